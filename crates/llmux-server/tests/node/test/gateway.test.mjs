// The official `openai` npm package against a running llmux gateway in front of
// `llmux-mock openai` (issue #12): models, chat, streaming, usage, tool-call round trips
// (by hand, with the stream helper and with the SDK's runTools loop), structured output and
// unknown fields in both directions.
//
// Environment (the same as the Python suites, see ../python/conftest.py):
//   LLMUX_GATEWAY_URL      required ("/v1" appended when missing); every test is skipped without it
//   LLMUX_GATEWAY_API_KEY  the gateway's key, if any
//   LLMUX_TEST_MODEL       default `fake-model`
//   LLMUX_TEST_REPLY       the upstream's exact reply (default llmux-mock's); empty: only non-empty
//
// Run: cd crates/llmux-server/tests/node && npm ci && LLMUX_GATEWAY_URL=... npm test

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import OpenAI from 'openai';

let URL_ = (process.env.LLMUX_GATEWAY_URL || '').replace(/\/+$/, '');
if (URL_ && !URL_.endsWith('/v1')) URL_ += '/v1';
const KEY = process.env.LLMUX_GATEWAY_API_KEY || 'no-key-needed';
const MODEL = process.env.LLMUX_TEST_MODEL || 'fake-model';
const REPLY = process.env.LLMUX_TEST_REPLY ?? 'Hello from the fake upstream!';
const skip = URL_ ? false : 'LLMUX_GATEWAY_URL is not set';

const client = new OpenAI({ baseURL: URL_ || 'http://127.0.0.1:9/v1', apiKey: KEY, maxRetries: 0, timeout: 30_000 });

const say = (text = 'Say hi') => [{ role: 'user', content: text }];
const checkReply = (text) => {
  assert.ok(text, 'empty reply');
  if (REPLY) assert.equal(text, REPLY);
};

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather in a city.',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
        required: ['city', 'unit'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'get_time',
      description: 'Local time in a timezone.',
      parameters: { type: 'object', properties: { timezone: { type: 'string' } }, required: ['timezone'] },
    },
  },
];
const ARGS = { get_weather: { city: 'value', unit: 'celsius' }, get_time: { timezone: 'value' } };
const IMPL = {
  get_weather: ({ city, unit }) => `18 degrees ${unit} in ${city}`,
  get_time: ({ timezone }) => `14:05 in ${timezone}`,
};

function checkCalls(calls, names) {
  assert.deepEqual(calls.map((c) => c.function.name), names);
  const ids = calls.map((c) => c.id);
  assert.ok(ids.every(Boolean) && new Set(ids).size === ids.length, `distinct ids: ${ids}`);
  for (const c of calls) {
    assert.equal(c.type, 'function');
    assert.deepEqual(JSON.parse(c.function.arguments), ARGS[c.function.name]);
  }
}

const toolMessages = (calls) =>
  calls.map((c) => ({ role: 'tool', tool_call_id: c.id, content: IMPL[c.function.name](JSON.parse(c.function.arguments)) }));
const expected = (calls) => 'Tool results: ' + toolMessages(calls).map((m) => m.content).join('; ');

describe('openai npm SDK through llmux', { skip }, () => {
  test('models list', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes(MODEL), `${MODEL} not in ${ids}`);
  });

  test('chat, non-stream', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: say() });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    checkReply(r.choices[0].message.content);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.total_tokens > 0);
    assert.equal(r.system_fingerprint, 'fp_fake');
    assert.equal(r.service_tier, 'default');
  });

  test('chat, stream, usage only with include_usage', async () => {
    const chunks = [];
    for await (const c of await client.chat.completions.create({ model: MODEL, messages: say(), stream: true })) chunks.push(c);
    assert.ok(chunks.length >= 2);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.ok(chunks.every((c) => c.system_fingerprint === 'fp_fake' && c.service_tier === 'default'));
    checkReply(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''));
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    assert.ok(chunks.every((c) => c.usage == null), 'usage streamed without include_usage');

    const withUsage = [];
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: say(),
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const c of stream) withUsage.push(c);
    const last = withUsage.at(-1);
    assert.deepEqual(last.choices, []);
    assert.ok(last.usage.total_tokens > 0);
    assert.ok(withUsage.slice(0, -1).every((c) => c.usage == null && c.choices.length === 1));
  });

  test('tool round trip, non-stream', async () => {
    const messages = say('Use get_weather for Paris and get_time for Europe/Paris.');
    const r = await client.chat.completions.create({ model: MODEL, messages, tools: TOOLS });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.ok('content' in choice.message && choice.message.content === null, 'content: null must be kept');
    checkCalls(choice.message.tool_calls, ['get_weather', 'get_time']);
    assert.deepEqual(r.x_fake_received?.tools, TOOLS, 'tools did not reach the upstream verbatim');

    messages.push(choice.message, ...toolMessages(choice.message.tool_calls));
    const final = await client.chat.completions.create({ model: MODEL, messages, tools: TOOLS });
    assert.equal(final.choices[0].finish_reason, 'stop');
    assert.equal(final.choices[0].message.content, expected(choice.message.tool_calls));
  });

  test('tool round trip, stream helper', async () => {
    const messages = say('get_time, then get_weather');
    const stream = client.chat.completions.stream({ model: MODEL, messages, tools: TOOLS });
    const done = [];
    let deltas = 0;
    stream.on('tool_calls.function.arguments.delta', () => deltas++);
    stream.on('tool_calls.function.arguments.done', (e) => done.push([e.name, e.index, JSON.parse(e.arguments)]));
    const completion = await stream.finalChatCompletion();
    const message = completion.choices[0].message;
    assert.equal(completion.choices[0].finish_reason, 'tool_calls');
    checkCalls(message.tool_calls, ['get_time', 'get_weather']);
    assert.deepEqual(done, [
      ['get_time', 0, ARGS.get_time],
      ['get_weather', 1, ARGS.get_weather],
    ]);
    assert.ok(deltas >= 4, `arguments must stream in fragments (${deltas} deltas)`);

    messages.push({ role: 'assistant', content: null, tool_calls: message.tool_calls }, ...toolMessages(message.tool_calls));
    let text = '';
    for await (const c of await client.chat.completions.create({ model: MODEL, messages, tools: TOOLS, stream: true })) {
      text += c.choices[0]?.delta?.content ?? '';
    }
    assert.equal(text, expected(message.tool_calls));
  });

  for (const stream of [false, true]) {
    test(`runTools agent loop (stream: ${stream})`, async () => {
      const called = [];
      const tools = TOOLS.map((t) => ({
        type: 'function',
        function: {
          name: t.function.name,
          description: t.function.description,
          parameters: t.function.parameters,
          parse: JSON.parse,
          function: (args) => {
            called.push([t.function.name, args]);
            return IMPL[t.function.name](args);
          },
        },
      }));
      const runner = client.chat.completions.runTools({
        model: MODEL,
        messages: say('Use get_weather for Paris and get_time for Europe/Paris.'),
        tools,
        stream,
      });
      const content = await runner.finalContent();
      assert.deepEqual(called, [
        ['get_weather', ARGS.get_weather],
        ['get_time', ARGS.get_time],
      ]);
      assert.equal(content, 'Tool results: 18 degrees celsius in value; 14:05 in value');
      assert.equal(runner.allChatCompletions().length, 2);
    });
  }

  test('structured output: json_object and json_schema', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: say('JSON please'), response_format: { type: 'json_object' } });
    const content = JSON.parse(r.choices[0].message.content);
    assert.deepEqual(Object.keys(content), ['answer']);
    if (REPLY) assert.equal(content.answer, REPLY);

    const schema = {
      type: 'object',
      properties: { name: { type: 'string' }, age: { type: 'integer' }, hobbies: { type: 'array', items: { type: 'string' } } },
      required: ['name', 'age', 'hobbies'],
      additionalProperties: false,
    };
    const parsed = await client.chat.completions.parse({
      model: MODEL,
      messages: say('Tell me about someone'),
      response_format: { type: 'json_schema', json_schema: { name: 'Person', strict: true, schema } },
    });
    assert.deepEqual(parsed.choices[0].message.parsed, { name: 'value', age: 1, hobbies: [] });
  });

  test('unknown fields both ways, logprobs', async () => {
    const sent = {
      metadata: { trace: 't-42' },
      store: false,
      user: 'user-7',
      seed: 7,
      reasoning_effort: 'low',
      x_made_up_field: { nested: [1, 'two', null, { deep: true }] },
    };
    const r = await client.chat.completions.create({ model: MODEL, messages: say(), logprobs: true, top_logprobs: 2, ...sent });
    assert.ok(r.x_fake_received, 'x_fake_received did not reach the client');
    for (const [k, v] of Object.entries(sent)) assert.deepEqual(r.x_fake_received[k], v, `${k} did not reach the upstream verbatim`);
    assert.deepEqual(r.choices[0].message.annotations, []);
    const lp = r.choices[0].logprobs;
    assert.ok(lp?.content?.length, 'logprobs were dropped');
    assert.equal(lp.content.map((t) => t.token).join(''), r.choices[0].message.content);
    assert.ok(lp.content.every((t) => t.top_logprobs.length === 2));
  });

  test('refusal: null reaches the client', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: say() });
    assert.ok('refusal' in r.choices[0].message && r.choices[0].message.refusal === null);
  });

  test('unpaired tool message is a BadRequestError', async () => {
    const messages = [...say('hi'), { role: 'tool', tool_call_id: 'call_nowhere', content: '42' }];
    await assert.rejects(client.chat.completions.create({ model: MODEL, messages, tools: TOOLS }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.equal(e.status, 400);
      return true;
    });
  });
});
