// Runs one ONNX model with onnxruntime-node (CPU) on inputs read from JSON and writes every output to JSON.
//   node tests/onnx/run.mjs MODEL.onnx INPUTS.json OUTPUTS.json
// Formats are described in tests/onnx/README.md. Exit 0 on success; otherwise one line
// "run.mjs: error: ..." on stderr and exit 2 (usage) or 1 (anything else).
import { createRequire } from 'node:module';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const depsPrefix = path.join(repoRoot, '.deps', 'onnxruntime');

class UsageError extends Error {}

function fail(err) {
  const msg = (err && err.message ? err.message : String(err)).replace(/\s*\n\s*/g, ' | ');
  process.stderr.write(`run.mjs: error: ${msg}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
}

function loadOrt() {
  // Resolve from .deps/onnxruntime/node_modules (eng/install-onnxruntime.sh); require() falls back to NODE_PATH.
  const req = createRequire(path.join(depsPrefix, 'package.json'));
  try {
    return req('onnxruntime-node');
  } catch (e) {
    throw new Error(`cannot load onnxruntime-node from ${path.join(depsPrefix, 'node_modules')} or NODE_PATH ` +
      `(run eng/install-onnxruntime.sh): ${e.message}`);
  }
}

// ---- float16 <-> float32 -------------------------------------------------------------------
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function toHalfBits(value) {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++; // round to nearest even (may carry into exponent)
  return half;
}

function fromHalfBits(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

// ---- JSON <-> tensors --------------------------------------------------------------------------
function jsonNumber(v, where) {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  throw new Error(`${where}: expected a number, got ${JSON.stringify(v)}`);
}

function bytesFromBase64(b64, bytesPerElement, count, where) {
  const buf = Buffer.from(b64, 'base64');
  if (buf.length !== bytesPerElement * count) {
    throw new Error(`${where}: base64 holds ${buf.length} bytes, dims need ${bytesPerElement * count}`);
  }
  const copy = new ArrayBuffer(buf.length); // aligned copy, little-endian as on every supported host
  new Uint8Array(copy).set(buf);
  return copy;
}

function toTensor(ort, name, spec) {
  const where = `input '${name}'`;
  if (!spec || typeof spec !== 'object') throw new Error(`${where}: expected {type, dims, data}`);
  const { type, dims } = spec;
  if (!Array.isArray(dims) || !dims.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`${where}: dims must be an array of non-negative integers`);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  const hasB64 = typeof spec.base64 === 'string';
  if (!hasB64 && (!Array.isArray(spec.data) || spec.data.length !== count)) {
    throw new Error(`${where}: data must be an array of ${count} values (dims [${dims.join(', ')}])` +
      (Array.isArray(spec.data) ? `, got ${spec.data.length}` : ''));
  }
  let data;
  switch (type) {
    case 'float32':
      data = hasB64 ? new Float32Array(bytesFromBase64(spec.base64, 4, count, where))
        : Float32Array.from(spec.data, (v, i) => jsonNumber(v, `${where}[${i}]`));
      break;
    case 'float16':
      data = hasB64 ? new Uint16Array(bytesFromBase64(spec.base64, 2, count, where))
        : Uint16Array.from(spec.data, (v, i) => toHalfBits(jsonNumber(v, `${where}[${i}]`)));
      break;
    case 'int64':
      data = hasB64 ? new BigInt64Array(bytesFromBase64(spec.base64, 8, count, where))
        : BigInt64Array.from(spec.data, (v, i) => {
          if ((typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v))) return BigInt(v);
          throw new Error(`${where}[${i}]: expected an integer, got ${JSON.stringify(v)}`);
        });
      break;
    case 'int32':
      data = hasB64 ? new Int32Array(bytesFromBase64(spec.base64, 4, count, where)) : Int32Array.from(spec.data);
      break;
    case 'bool':
      data = Uint8Array.from(spec.data, (v) => (v ? 1 : 0));
      break;
    default:
      throw new Error(`${where}: unsupported type ${JSON.stringify(type)} (float32, float16, int64, int32, bool)`);
  }
  return new ort.Tensor(type, data, dims);
}

function fromTensor(t) {
  const out = { type: t.type, dims: Array.from(t.dims, Number) };
  const d = t.data;
  const num = (v) => (Number.isFinite(v) ? v : String(v)); // NaN / Infinity / -Infinity as strings
  switch (t.type) {
    case 'float32':
      // JSON numbers are the exact float32 values (shortest double round-trip text); base64 holds the raw bytes too.
      out.data = Array.from(d, num);
      out.base64 = Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64');
      break;
    case 'float16': {
      const bits = d instanceof Uint16Array ? d : new Uint16Array(d.buffer, d.byteOffset, d.length);
      out.data = Array.from(bits, (h) => num(fromHalfBits(h)));
      out.base64 = Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength).toString('base64');
      break;
    }
    case 'float64':
      out.data = Array.from(d, num);
      break;
    case 'int64':
    case 'uint64':
      out.data = Array.from(d, (v) => (v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v.toString()));
      break;
    case 'bool':
      out.data = Array.from(d, (v) => v !== 0);
      break;
    case 'string':
      out.data = Array.from(d);
      break;
    default:
      out.data = Array.from(d, Number);
  }
  return out;
}

async function main(argv) {
  if (argv.length !== 3) throw new UsageError('usage: node tests/onnx/run.mjs MODEL.onnx INPUTS.json OUTPUTS.json');
  const [modelPath, inputsPath, outputsPath] = argv;
  if (!existsSync(modelPath)) throw new UsageError(`model not found: ${modelPath}`);
  if (!existsSync(inputsPath)) throw new UsageError(`inputs not found: ${inputsPath}`);
  let inputsJson;
  try {
    inputsJson = JSON.parse(readFileSync(inputsPath, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read inputs ${inputsPath}: ${e.message}`);
  }
  if (!inputsJson || typeof inputsJson !== 'object' || Array.isArray(inputsJson)) {
    throw new Error(`inputs ${inputsPath}: expected an object {name: {type, dims, data}}`);
  }

  const ort = loadOrt();
  const options = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
  };

  let session;
  const t0 = performance.now();
  try {
    // By path, so that external data (.data files) resolves beside the model.
    session = await ort.InferenceSession.create(modelPath, options);
  } catch (e) {
    throw new Error(`cannot load model ${modelPath}: ${e.message}`);
  }
  const sessionMs = performance.now() - t0;

  const given = Object.keys(inputsJson).filter((k) => k !== '_meta');
  const missing = session.inputNames.filter((n) => !given.includes(n));
  const extra = given.filter((n) => !session.inputNames.includes(n));
  if (missing.length || extra.length) {
    throw new Error(`input names do not match the model: model wants [${session.inputNames.join(', ')}]` +
      (missing.length ? `; missing [${missing.join(', ')}]` : '') + (extra.length ? `; unknown [${extra.join(', ')}]` : ''));
  }
  const feeds = {};
  for (const name of session.inputNames) feeds[name] = toTensor(ort, name, inputsJson[name]);

  let results;
  const t1 = performance.now();
  try {
    results = await session.run(feeds);
  } catch (e) {
    throw new Error(`run failed: ${e.message}`);
  }
  const runMs = performance.now() - t1;

  const out = {};
  for (const name of session.outputNames) out[name] = fromTensor(results[name]);
  out._meta = {
    session_ms: Math.round(sessionMs * 1000) / 1000,
    run_ms: Math.round(runMs * 1000) / 1000,
    input_names: [...session.inputNames],
    output_names: [...session.outputNames],
    onnxruntime: ort.env.versions.node ?? null,
  };
  await session.release();
  writeFileSync(outputsPath, JSON.stringify(out) + '\n');
}

main(process.argv.slice(2)).then(() => process.exit(0), fail);
