/** Prints `rows` as a table on stderr and `result` as the last line of stdout. */
export function report(result: Record<string, unknown>, rows: Array<[string, string]>, json: boolean): void {
  const width = Math.max(...rows.map(([name]) => name.length));
  process.stderr.write(`${rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n')}\n`);
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
