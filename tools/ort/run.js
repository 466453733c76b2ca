#!/usr/bin/env node
// Runs an ONNX model in onnxruntime (the onnxruntime-node package pinned in
// package.json, CPU execution provider) on inputs read from .npy files, writes
// each output to a .npy file, optionally times repeated runs, and prints one
// JSON object on stdout. shrink's Go tests drive it through internal/ortest.
//
//   node run.js MODEL.onnx --input NAME=FILE.npy [--input ...] [--out DIR]
//               [--runs N] [--warmup N] [--threads N] [--opt LEVEL]
//               [--optimized FILE] [--batch N]
//
// --out DIR     write output NAME to DIR/NAME.npy (characters other than
//               [A-Za-z0-9._-] become _; the JSON gives each file)
// --runs N      time N runs after --warmup runs (default 1 when --runs is
//               set): the JSON's timing gives milliseconds per run and, with
//               the first input's leading dimension as the batch size, items
//               per second. Latency: feed batch 1. Throughput: feed a batch.
// --threads N   intra-op threads (default 0: onnxruntime's choice, one per core)
// --opt LEVEL   graph optimization: disabled, basic, extended or all (default)
// --optimized FILE  also write the graph onnxruntime runs after its
//               optimizations (its fusions show which kernels run)
// --batch N     run the inputs N rows at a time (their leading dimension) and
//               concatenate the outputs: the batches shrink predict uses,
//               which a dynamically quantized model's results depend on
//
// npy dtypes: float32, float64, int8, uint8, int32, int64, bool.
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function fail(msg) {
  process.stderr.write(`run.js: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const a = { model: null, inputs: [], out: null, runs: 0, warmup: null, threads: 0, opt: 'all', optimized: null, batch: 0 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      return argv[++i];
    };
    const count = (name) => {
      const v = value();
      if (!/^\d+$/.test(v)) fail(`${name} ${v}: want a non-negative integer`);
      return Number(v);
    };
    switch (arg) {
      case '--input': {
        const v = value();
        const eq = v.indexOf('=');
        if (eq <= 0) fail(`--input ${v}: want NAME=FILE.npy`);
        a.inputs.push({ name: v.slice(0, eq), file: v.slice(eq + 1) });
        break;
      }
      case '--out': a.out = value(); break;
      case '--runs': a.runs = count('--runs'); break;
      case '--warmup': a.warmup = count('--warmup'); break;
      case '--threads': a.threads = count('--threads'); break;
      case '--opt': a.opt = value(); break;
      case '--optimized': a.optimized = value(); break;
      case '--batch': a.batch = count('--batch'); break;
      case '-h': case '--help':
        process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n') + '\n');
        process.exit(0);
        break;
      default:
        if (arg.startsWith('-')) fail(`unknown flag ${arg} (see --help)`);
        if (a.model) fail(`two models: ${a.model} and ${arg}`);
        a.model = arg;
    }
  }
  if (!a.model) fail('no model: node run.js MODEL.onnx --input NAME=FILE.npy ...');
  if (!['disabled', 'basic', 'extended', 'all'].includes(a.opt)) fail(`--opt ${a.opt}: want disabled, basic, extended or all`);
  if (a.warmup === null) a.warmup = a.runs > 0 ? 1 : 0;
  return a;
}

// dtype: [npy descr, onnxruntime type, typed array, bytes per element]
const DTYPES = {
  float32: ['<f4', 'float32', Float32Array, 4],
  float64: ['<f8', 'float64', Float64Array, 8],
  int8: ['|i1', 'int8', Int8Array, 1],
  uint8: ['|u1', 'uint8', Uint8Array, 1],
  int32: ['<i4', 'int32', Int32Array, 4],
  int64: ['<i8', 'int64', BigInt64Array, 8],
  bool: ['|b1', 'bool', Uint8Array, 1],
};

function readNpy(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    fail(`input ${file}: ${e.message}`);
  }
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') fail(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shape || /'fortran_order':\s*True/.test(header)) fail(`${file}: header ${header.trim()}: want a C-order array`);
  const dtype = Object.keys(DTYPES).find((k) => DTYPES[k][0].slice(1) === descr[1].slice(1) && descr[1][0] !== '>');
  if (!dtype) fail(`${file}: dtype ${descr[1]} is not supported (want ${Object.keys(DTYPES).join(', ')})`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const n = dims.reduce((p, d) => p * d, 1);
  const [, type, Typed, size] = DTYPES[dtype];
  const off = buf.byteOffset + start + hlen;
  if (buf.length - start - hlen !== n * size) fail(`${file}: shape [${dims}] of ${dtype} needs ${n * size} bytes, the file has ${buf.length - start - hlen}`);
  // slice copies, so the typed array is aligned whatever the Buffer's offset.
  const data = new Typed(buf.buffer.slice(off, off + n * size));
  return new ort.Tensor(type, data, dims);
}

function writeNpy(file, tensor) {
  const dtype = Object.keys(DTYPES).find((k) => DTYPES[k][1] === tensor.type);
  if (!dtype) fail(`output of type ${tensor.type} cannot be written to .npy`);
  const dims = tensor.dims.map(String);
  const shape = dims.length === 1 ? `${dims[0]},` : dims.join(', ');
  let header = `{'descr': '${DTYPES[dtype][0]}', 'fortran_order': False, 'shape': (${shape}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const d = tensor.data;
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(d.buffer, d.byteOffset, d.byteLength)]));
}

// rows is the part of tensor t from row lo to row hi of its leading dimension.
function rows(t, lo, hi) {
  const per = t.dims.slice(1).reduce((p, d) => p * d, 1);
  return new ort.Tensor(t.type, t.data.slice(lo * per, hi * per), [hi - lo, ...t.dims.slice(1)]);
}

// runBatches runs the feeds `batch` rows at a time and joins each output's
// batches along its leading dimension.
async function runBatches(session, feeds, batch) {
  const names = Object.keys(feeds);
  const n = names.length > 0 ? feeds[names[0]].dims[0] : 0;
  const parts = {};
  for (let lo = 0; lo < n; lo += batch) {
    const hi = Math.min(n, lo + batch);
    const part = {};
    for (const name of names) part[name] = rows(feeds[name], lo, hi);
    const out = await session.run(part);
    for (const [name, t] of Object.entries(out)) (parts[name] = parts[name] || []).push(t);
  }
  const joined = {};
  for (const [name, ts] of Object.entries(parts)) {
    const size = ts.reduce((p, t) => p + t.data.length, 0);
    const data = new ts[0].data.constructor(size);
    let at = 0;
    for (const t of ts) {
      data.set(t.data, at);
      at += t.data.length;
    }
    joined[name] = new ort.Tensor(ts[0].type, data, [ts.reduce((p, t) => p + t.dims[0], 0), ...ts[0].dims.slice(1)]);
  }
  return joined;
}

function stats(ms) {
  const s = [...ms].sort((x, y) => x - y);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { mean_ms: ms.reduce((a, b) => a + b, 0) / ms.length, median_ms: q(0.5), p90_ms: q(0.9), min_ms: s[0], max_ms: s[s.length - 1] };
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const opts = { graphOptimizationLevel: a.opt, executionMode: 'sequential', interOpNumThreads: 1, logSeverityLevel: 3 };
  if (a.threads > 0) opts.intraOpNumThreads = a.threads;
  if (a.optimized) opts.optimizedModelFilePath = a.optimized;
  let session;
  try {
    session = await ort.InferenceSession.create(a.model, opts);
  } catch (e) {
    fail(`load ${a.model}: ${e.message}`);
  }
  const feeds = {};
  const inputs = {};
  for (const { name, file } of a.inputs) {
    if (!session.inputNames.includes(name)) fail(`input ${name}: the model's inputs are ${session.inputNames.join(', ')}`);
    feeds[name] = readNpy(file);
    inputs[name] = { dtype: feeds[name].type, shape: feeds[name].dims };
  }
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length > 0) fail(`no --input for ${missing.join(', ')}`);

  let results;
  try {
    results = a.batch > 0 ? await runBatches(session, feeds, a.batch) : await session.run(feeds);
  } catch (e) {
    fail(`run ${a.model}: ${e.message}`);
  }
  const outputs = {};
  if (a.out) fs.mkdirSync(a.out, { recursive: true });
  for (const name of session.outputNames) {
    const t = results[name];
    outputs[name] = { dtype: t.type, shape: t.dims };
    if (a.out) {
      const file = path.join(a.out, name.replace(/[^A-Za-z0-9._-]/g, '_') + '.npy');
      writeNpy(file, t);
      outputs[name].file = file;
    }
  }
  const report = { onnxruntime: ort.env.versions.node, model: a.model, inputs, outputs };
  if (a.runs > 0) {
    for (let i = 0; i < a.warmup; i++) await session.run(feeds);
    const ms = [];
    for (let i = 0; i < a.runs; i++) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const first = a.inputs.length > 0 ? feeds[a.inputs[0].name].dims : [];
    const batch = first.length > 0 ? first[0] : 1;
    const st = stats(ms);
    report.timing = { runs: a.runs, warmup: a.warmup, threads: a.threads, batch, ...st, items_per_second: (batch * 1000) / st.mean_ms };
  }
  await session.release();
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch((e) => fail(e.stack || String(e)));
