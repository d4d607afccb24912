"""Run from the repository root after `npm run build`:
    node scripts/pytorch-bench/dump.mjs && /usr/bin/python3 scripts/pytorch-bench/bench.py
(Debian's python3-torch). PyTorch CPU (2 threads) train step and GC step (k=4, exact double backprop) of the fixture
models, rebuilt from their ONNX graphs (bench-results/pytorch/*.json, written by dump.mjs): same shapes, ops and
weights as the ort engine's bench. BN in training mode (batch statistics) for the train step,
inference mode for GC, as Harden does."""
import json, sys, time, statistics
import torch, os
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
import torch.nn.functional as F
torch.set_num_threads(2)
torch.manual_seed(0)

def load(name):
    d = json.load(open(f'{ROOT}/bench-results/pytorch/{name}.json'))
    T = lambda t: torch.tensor(t['data'], dtype=torch.float32 if t['dtype'] == 'float32' else torch.int64).reshape(t['shape'])
    inits = {k: T(v) for k, v in d['inits'].items()}
    consts = {k: T(v) for k, v in d['consts'].items()}
    return d, inits, consts

def run(d, values, x, training):
    env = dict(values); env[d['input']] = x
    for n in d['nodes']:
        op, a, i = n['op'], n['attrs'], [env.get(k) if k else None for k in n['inputs']]
        if op == 'Constant': y = env[n['outputs'][0]]
        elif op == 'Conv':
            p = a.get('pads', [0, 0, 0, 0])
            assert p[0] == p[2] and p[1] == p[3]
            y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get('strides', 1), (p[0], p[1]), a.get('dilations', 1), a.get('group', 1))
        elif op == 'Relu': y = F.relu(i[0])
        elif op == 'MaxPool': y = F.max_pool2d(i[0], a['kernel_shape'], a['strides'], a.get('pads', [0])[0])
        elif op == 'AveragePool': y = F.avg_pool2d(i[0], a['kernel_shape'], a['strides'])
        elif op == 'Pad':
            p = i[1].tolist(); r = len(p) // 2
            y = F.pad(i[0], [v for k in reversed(range(r)) for v in (p[k], p[k + r])])
        elif op == 'BatchNormalization':
            y = F.batch_norm(i[0], i[3], i[4], i[1], i[2], training=training, momentum=0.1, eps=a['epsilon'])
        elif op == 'Add': y = i[0] + i[1]
        elif op == 'Mul': y = i[0] * i[1]
        elif op == 'Clip': y = torch.clamp(i[0], float(i[1]) if i[1] is not None else None, float(i[2]) if len(i) > 2 and i[2] is not None else None)
        elif op == 'HardSigmoid': y = torch.clamp(a.get('alpha', 0.2) * i[0] + a.get('beta', 0.5), 0, 1)
        elif op == 'GlobalAveragePool': y = i[0].mean((2, 3), keepdim=True)
        elif op == 'Flatten': y = i[0].flatten(a.get('axis', 1))
        elif op == 'Gemm':
            b = i[1].t() if a.get('transB', 0) else i[1]
            y = i[0] @ b + (i[2] if len(i) > 2 else 0)
        elif op == 'Shape': y = torch.tensor(list(i[0].shape))
        elif op == 'Gather': y = i[0][i[1]]
        elif op == 'Unsqueeze': y = i[0].reshape(-1)
        elif op == 'Concat': y = torch.cat([t.reshape(-1) for t in i])
        elif op == 'Reshape': y = i[0].reshape([int(v) for v in i[1].tolist()])
        else: raise SystemExit(f'op {op}')
        env[n['outputs'][0]] = y
    return env[d['output']]

def median_ms(f, reps):
    for _ in range(3): f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)

def check_reference(name, d, inits, consts):
    """The rebuilt graph must reproduce the fixture's stored PyTorch output."""
    import numpy as np
    base = f'{ROOT}/test/fixtures/onnx/{name}'
    meta = json.load(open(f'{base}.json'))
    x = torch.from_numpy(np.fromfile(f'{base}.input.f32', dtype=np.float32).reshape(meta['input_shape']))
    ref = np.fromfile(f'{base}.output.f32', dtype=np.float32).reshape(meta['output_shape'])
    with torch.no_grad():
        err = float(np.abs(run(d, {**inits, **consts}, x, False).numpy() - ref).max())
    if err > 1e-4: raise SystemExit(f'{name}: rebuilt graph differs from the reference output by {err}')

out = {}
for name, batch, shape in [('lenet5_mnist', 128, (1, 28, 28)), ('resnet8_bn', 64, (3, 32, 32)), ('vggish_bn', 64, (3, 32, 32)), ('mobilemini_dw', 64, (3, 32, 32))]:
    d, inits, consts = load(name)
    check_reference(name, d, inits, consts)
    stats = {k for n in d['nodes'] if n['op'] == 'BatchNormalization' for k in n['inputs'][3:5]}
    shapes_only = {k for n in d['nodes'] if n['op'] in ('Reshape', 'Pad', 'Clip') for k in n['inputs'][1:]}
    params = {k: v.clone().requires_grad_(True) for k, v in inits.items() if v.dtype == torch.float32 and k not in stats and k not in shapes_only}
    fixed = {**{k: v for k, v in inits.items() if k not in params}, **consts}
    head = set(list(params)[-2:])  # the final Gemm's weight and bias
    x = torch.randn(batch, *shape); y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(params.values(), lr=1e-3)
    def train():
        opt.zero_grad()
        loss = F.cross_entropy(run(d, {**fixed, **params}, x, True), y)
        loss.backward(); opt.step()
    backbone = [params[k] for k in params if k not in head]
    def gc(k=4):
        xs, ys = x.chunk(k), y.chunk(k)
        g = [torch.autograd.grad(F.cross_entropy(run(d, {**fixed, **params}, xs[i], False), ys[i]), backbone, create_graph=True) for i in range(k)]
        flat = [torch.cat([t.reshape(-1) for t in gi]) for gi in g]
        G = sum(flat)
        value = 0.5 * (G @ G - sum(f @ f for f in flat))
        torch.autograd.grad(value, backbone)
    out[name] = {'trainMs': round(median_ms(train, 20), 2), 'gcMs': round(median_ms(gc, 10), 1)}
    print(name, out[name], file=sys.stderr)
print(json.dumps(out))
