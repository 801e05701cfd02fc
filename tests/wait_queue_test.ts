import assert from "node:assert/strict";
import { STAMP_SLACK_MS, type Waiter, WaitQueue } from "../src/pool/wait_queue.ts";

function waiter(timeoutMs: number, log: string[], name: string): Waiter<string> {
  return {
    started: Number.NaN,
    deadline: Number.NaN,
    timeoutMs,
    resolve: (v) => log.push(`${name}:${v}`),
    reject: () => log.push(`${name}:rejected`),
    cleanup: undefined,
    live: true,
  };
}

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* a synchronous stretch */ }
}

Deno.test("a waiter queued late in a stamp window never times out early", async () => {
  const pushedAt = new Map<string, number>();
  const expiredAt = new Map<string, number>();
  const { promise, resolve } = Promise.withResolvers<void>();
  const queue = new WaitQueue<string>((w, now) => {
    const name = w === a ? "a" : "b";
    expiredAt.set(name, now);
    if (expiredAt.size === 2) resolve();
  });
  const log: string[] = [];
  const a = waiter(30, log, "a");
  const b = waiter(15, log, "b");
  pushedAt.set("a", performance.now());
  queue.push(a);
  // b comes inside a's stamp window but after the window's clock read went stale.
  spin(STAMP_SLACK_MS + 8);
  pushedAt.set("b", performance.now());
  queue.push(b);
  await promise;
  for (const [name, w] of [["a", a], ["b", b]] as const) {
    const waited = (expiredAt.get(name) as number) - (pushedAt.get(name) as number);
    // The queue allows 1 ms for timers that fire early, never more.
    assert.ok(waited >= w.timeoutMs - 1, `${name} waited ${waited} ms of ${w.timeoutMs}`);
    assert.ok(w.started >= (pushedAt.get(name) as number), `${name} stamped before it came`);
  }
  assert.equal(queue.size, 0);
});

Deno.test("waiters leave in FIFO order and every one is stamped when handed out", () => {
  const queue = new WaitQueue<string>(() => assert.fail("nothing expires"));
  const log: string[] = [];
  const ws = Array.from({ length: 5 }, (_, i) => waiter(60_000, log, `w${i}`));
  for (const w of ws) queue.push(w);
  assert.equal(queue.remove(ws[2] as Waiter<string>), true);
  assert.equal(queue.remove(ws[2] as Waiter<string>), false);
  const now = performance.now();
  const order: Waiter<string>[] = [];
  for (let w = queue.shift(now); w !== undefined; w = queue.shift(now)) order.push(w);
  assert.deepEqual(order, [ws[0], ws[1], ws[3], ws[4]]);
  for (const w of order) {
    assert.ok(Number.isFinite(w.started) && w.started <= now);
    assert.equal(w.deadline, w.started + 60_000);
  }
  assert.equal(queue.size, 0);
  queue.drain(); // the timer is gone: the sanitizer would fail the test otherwise
});
