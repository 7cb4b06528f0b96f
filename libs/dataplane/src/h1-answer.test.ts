import assert from 'node:assert/strict';
import { test } from 'node:test';
import { H1Answer, type AnswerStep } from './h1-answer.ts';

/** Feeds `chunks` to an answer to `method`; what reached the sink and each step's kind. */
function read(method: string, chunks: readonly string[]) {
  const sent: Buffer[] = [];
  const answer = new H1Answer({ write: (chunk) => (sent.push(Buffer.from(chunk)), true) });
  answer.start(method);
  const steps: AnswerStep[] = chunks.map((chunk) => answer.feed(Buffer.from(chunk, 'latin1')));
  return { answer, steps, sent: Buffer.concat(sent).toString('latin1') };
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello';

test('an answer in one piece passes whole and ends with its body', () => {
  const { answer, steps, sent } = read('GET', [OK]);
  assert.deepEqual(steps, [{ kind: 'done', excess: 0 }]);
  assert.equal(sent, OK);
  assert.equal(answer.status, 200);
  assert.equal(answer.keepAlive, true);
});

test('split at every byte, the same bytes pass and the end is found at the last one', () => {
  for (let cut = 1; cut < OK.length; cut++) {
    const { steps, sent } = read('GET', [OK.slice(0, cut), OK.slice(cut)]);
    assert.equal(steps[0]!.kind, 'more', `cut ${cut}`);
    assert.deepEqual(steps[1], { kind: 'done', excess: 0 }, `cut ${cut}`);
    assert.equal(sent, OK, `cut ${cut}`);
  }
});

test('interim answers pass before the final one; HEAD answers have no body', () => {
  const interim = read('POST', ['HTTP/1.1 100 Continue\r\n\r\n' + OK]);
  assert.deepEqual(interim.steps, [{ kind: 'done', excess: 0 }]);
  assert.equal(interim.answer.status, 200);
  const head = read('HEAD', ['HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n']);
  assert.deepEqual(head.steps, [{ kind: 'done', excess: 0 }]);
});

test('a chunked body ends with its last chunk; bytes past the end are excess', () => {
  const chunked = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n';
  assert.deepEqual(read('GET', [chunked]).steps, [{ kind: 'done', excess: 0 }]);
  const extra = read('GET', [OK + 'HTTP/1.1 200 OK']);
  assert.deepEqual(extra.steps, [{ kind: 'done', excess: 15 }]);
  assert.equal(extra.sent, OK, 'the excess is not passed on');
});

test('a body framed by the close is complete only when the server ends', () => {
  const { answer, steps } = read('GET', ['HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nsome', ' more']);
  assert.deepEqual(steps, [{ kind: 'more' }, { kind: 'more' }]);
  assert.equal(answer.endedCleanly(), true);
  assert.equal(answer.keepAlive, false);
  const cut = read('GET', ['HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf']);
  assert.equal(cut.answer.endedCleanly(), false, 'a Content-Length body cut short is not complete');
});

test('101 turns the connection into a tunnel: the head passes, what follows is returned', () => {
  const { steps, sent } = read('GET', [
    'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nframes',
  ]);
  assert.equal(steps[0]!.kind, 'tunnel');
  assert.equal((steps[0] as { rest: Buffer }).rest.toString(), 'frames');
  assert.equal(sent, 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
});

test('a malformed answer is an error, and says whether part of it was passed on', () => {
  const bad = read('GET', ['HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello']);
  assert.equal(bad.steps[0]!.kind, 'error');
  assert.equal((bad.steps[0] as { answered: boolean }).answered, false);
  assert.equal(bad.sent, '');
  const badChunk = read('GET', ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n']);
  assert.equal(badChunk.steps[0]!.kind, 'error');
  assert.equal((badChunk.steps[0] as { answered: boolean }).answered, true);
});

test('a full sink is reported, and start() readies the reader for the next answer', () => {
  const answer = new H1Answer({ write: () => false });
  answer.start('GET');
  answer.feed(Buffer.from(OK));
  assert.equal(answer.backedUp, true);
  answer.start('GET');
  assert.equal(answer.status, 0);
  assert.equal(answer.answered, false);
  assert.deepEqual(answer.feed(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n')), { kind: 'done', excess: 0 });
  assert.equal(answer.status, 204);
});
