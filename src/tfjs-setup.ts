/**
 * tfjs-core's Node bundle registers neither the gradient functions nor the chained tensor methods
 * (t.reshape(...)), and its ESM files cannot be loaded by Node directly. The union package's Node
 * bundle registers both on the shared tfjs-core instance, so it is imported for that side effect.
 */
import '@tensorflow/tfjs';
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
