// The README's main command: `npm run demo` runs two clusters in file mode with an ingress
// gateway, Redis and Prometheus servers, checks the whole scenario (ingress, cross-cluster
// HTTP and gRPC, the caller's identity, a weighted split, faults masked by retries,
// failover, an authorization deny, a rate limit, the metrics in Prometheus), shows a live
// view read from Prometheus, and leaves no process behind on Ctrl-C.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { repoRoot } from '@causeway/testing';
import { federationDashboard, panelQueries } from '@causeway/cli/dashboard';

const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');

/** The processes under `root` (its children, theirs, and so on). */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const line of execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' }).split('\n')) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (pid && ppid) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const tree: number[] = [];
  for (let next = [root]; next.length > 0;) {
    next = next.flatMap((pid) => children.get(pid) ?? []);
    tree.push(...next);
  }
  return tree;
}

const commandOf = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
};

/** Whether a process still runs the command it ran when it was seen (its pid not reused). */
const stillRunning = (pid: number, command: string): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return commandOf(pid) === command;
};

for (const mode of ['auto', 'L7'] as const)
  test(
    `the demo (--mode ${mode}) passes every check, shows a live view, and Ctrl-C leaves no process behind`,
    { timeout: 300_000 },
    async () => {
      const testStarted = Date.now();
      const child = spawn(process.execPath, [cli, 'demo', '--json', '--mode', mode], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const stdout: string[] = [];
      let stderr = '';
      createInterface({ input: child.stdout }).on('line', (line) => stdout.push(line));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      /** Every process the demo started (seen while it ran), with its command line. */
      const started = new Map<number, string>();
      try {
        // With --json the live view goes to stderr: stdout holds the JSON object alone.
        let promLine: (line: string) => void = () => {};
        const prometheusLine = new Promise<string>((resolve) => (promLine = resolve));
        const liveLine = new Promise<string>((resolve) =>
          createInterface({ input: child.stderr }).on('line', (line) => {
            stderr += `${line}\n`;
            if (/^\d\d:\d\d:\d\d {2}west\/web -> /.test(line)) resolve(line);
            // (Rates need two scrapes of live traffic: a line with a route's and a cluster's.)
            if (
              /Prometheus: ingress routes [^;]*shop\/storefront#\d+ (?!0\/s)[\d.]+\/s/.test(line) &&
              /served by [^;]*\b(east|west) (?!0\/s)[\d.]+\/s/.test(line)
            )
              promLine(line);
          }),
        );
        const live = await Promise.race([
          liveLine,
          exited.then((code) => `exited ${code}`),
          // (Within the test's own timeout, so that what it started is stopped below.)
          new Promise<string>((resolve) =>
            setTimeout(() => resolve('no live view within 240 s'), 240_000).unref(),
          ),
        ]);
        for (const pid of processTree(child.pid!)) started.set(pid, commandOf(pid));
        assert.match(live, /west\/web -> cart\.shop\.svc\.clusterset\.local: cart-west \d+/, stderr);
        const result = JSON.parse(stdout[0]!) as {
          ok: boolean;
          checks: Array<{ name: string; ok: boolean; detail: string }>;
        };
        assert.deepEqual(
          result.checks.map((check) => [check.name, check.ok]),
          [
            ['ingress', true],
            ['cross-cluster-http', true],
            ['cross-cluster-grpc', true],
            ['mtls-identity', true],
            ['weighted-split', true],
            ['fault-injection', true],
            ['retries', true],
            ['failover', true],
            ['outlier-ejection', true],
            ['authz-deny', true],
            ['rate-limit', true],
            ['circuit-breaker', true],
            ['eastwest-refusal', true],
            ['metrics-scraped', true],
          ],
          JSON.stringify(result.checks),
        );
        assert.equal(result.ok, true);
        assert.equal(stdout.length, 1, `stdout holds more than the JSON object: ${stdout.join('\n')}`);
        assert.ok(started.size > 3, 'the demo processes are not running');
        // The live view reads the request rates back from the global Prometheus.
        const fromPrometheus = await Promise.race([
          prometheusLine,
          new Promise<string>((resolve) => setTimeout(() => resolve('none within 30 s'), 30_000).unref()),
        ]);
        assert.match(fromPrometheus, /success [\d.]+%; p99 [\d.]+ ms/, stderr.slice(-3000));
        // Every panel of the Grafana dashboard has data in the global Prometheus, set up as
        // infra/prometheus documents it (Grafana's variables stand for all clusters).
        const global = /Prometheus global +(http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)?.[1];
        assert.ok(global, stderr.slice(-3000));
        // A query over the demo's run (a rate panel of a burst is 0 once the burst is over).
        const overTheRun = async (promql: string) =>
          (await (
            await fetch(
              `${global}/api/v1/query_range?query=${encodeURIComponent(promql)}&start=${Math.floor(testStarted / 1000) - 5}&end=${Math.ceil(Date.now() / 1000)}&step=2`,
            )
          ).json()) as {
            status: string;
            error?: string;
            data?: { result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }> };
          };
        const empty = new Set(panelQueries(federationDashboard()).map((query) => JSON.stringify(query)));
        for (let round = 0; round < 60 && empty.size > 0; round++) {
          for (const key of empty) {
            const { expr } = JSON.parse(key) as { expr: string };
            const promql = expr
              .replaceAll('$cluster', '.*')
              .replaceAll('$__rate_interval', '1m')
              .replaceAll('$__range', '5m');
            const answer = await overTheRun(promql);
            assert.equal(answer.status, 'success', `${promql}: ${answer.error}`);
            // Data: a finite value (an empty histogram gives NaN; a counter that appeared with a
            // burst inside one scrape has a rate of 0, which is still its series), and every
            // label the query groups by present (a misspelled one would group all under none).
            const result = answer.data?.result ?? [];
            const grouped = [...promql.matchAll(/by \(([^)]*)\)/g)]
              .flatMap((match) => match[1]!.split(','))
              .map((label) => label.trim())
              .filter((label) => label !== 'le');
            const real = result.filter((series) =>
              series.values.some(([, value]) => Number.isFinite(Number(value))),
            );
            if (real.length > 0 && grouped.every((label) => real.some((series) => series.metric[label])))
              empty.delete(key);
          }
          if (empty.size > 0) await new Promise((resolve) => setTimeout(resolve, 1_000));
        }
        assert.deepEqual([...empty], [], 'dashboard queries with no data in the global Prometheus');
        // The demo's one east-west refusal has a rate above 0 (its reason is exported from 0).
        let refusalRate = 0;
        for (let round = 0; round < 20 && refusalRate === 0; round++) {
          if (round > 0) await new Promise((resolve) => setTimeout(resolve, 1_000));
          const answer = await overTheRun('sum(rate(causeway_eastwest_refused_total[1m]))');
          refusalRate = Math.max(
            0,
            ...(answer.data?.result[0]?.values ?? []).map(([, value]) => Number(value)),
          );
        }
        assert.ok(refusalRate > 0, 'the east-west refusal shows in its rate panel');
        // Every URL it printed answers: the ingress, each Prometheus, the admin ports.
        const urls = [...stderr.matchAll(/(http:\/\/127\.0\.0\.1:\d+)(\/metrics)?/g)].map((m) => m[0]);
        assert.ok(urls.length >= 8, stderr.slice(-3000));
        for (const url of urls)
          assert.ok((await fetch(url, { headers: { host: 'shop.example.com' } })).status < 500, url);
        child.kill('SIGINT');
        assert.equal(await exited, 0, stderr);
        assert.match(stderr, /stopped; no process left behind/);
        // (A helper a component ran, such as tsx's esbuild service, ends once its parent has.)
        const left = () => [...started].filter(([pid, command]) => stillRunning(pid, command));
        for (let wait = 0; wait < 50 && left().length > 0; wait++)
          await new Promise((resolve) => setTimeout(resolve, 100));
        assert.deepEqual(left(), [], 'processes the demo started are still running');
      } finally {
        // A failed check leaves nothing behind either.
        if (child.exitCode === null && child.signalCode === null) {
          for (const pid of processTree(child.pid!)) started.set(pid, commandOf(pid));
          child.kill('SIGINT');
          await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
        }
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        for (const [pid, command] of started) if (stillRunning(pid, command)) process.kill(pid, 'SIGKILL');
      }
    },
  );
