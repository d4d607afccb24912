import './elementwise.js';
import './shape.js';
import './conv.js';
import './normalization.js';
import './nchwc.js';
