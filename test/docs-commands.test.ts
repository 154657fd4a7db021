// Every command README.md and bench/RESULTS.md show runs as written on the
// machine's Node (20 or later): npm scripts that exist, or `npx node …`
// (the bundled Node 24), never a bare `node file.ts` (Node 20 cannot run
// TypeScript). Checked on the commands in code spans and code blocks.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');
const scripts = new Set(Object.keys(JSON.parse(read('package.json')).scripts as Record<string, string>));

function commands(md: string): string[] {
  const out: string[] = [];
  for (const m of md.matchAll(/```(?:sh|bash|console)?\n([\s\S]*?)```/g)) out.push(...m[1].split('\n'));
  for (const m of md.matchAll(/`([^`\n]+)`/g)) out.push(m[1]);
  return out.map((l) => l.trim()).filter((l) => /^(npm|npx|node)\b/.test(l));
}

describe('commands in the docs', () => {
  for (const file of ['README.md', 'bench/RESULTS.md']) {
    it(`${file}: npm scripts exist, TypeScript runs through npx node or an npm script`, () => {
      const cmds = commands(read(file));
      expect(cmds.length).toBeGreaterThan(5);
      for (const c of cmds) {
        expect(/^node\s+\S+\.ts\b/.test(c), `${file}: "${c}" needs Node 24: write npx node … or an npm script`).toBe(false);
        const run = /^npm run ([\w:.-]+)/.exec(c);
        if (run) expect(scripts.has(run[1]), `${file}: "${c}": no npm script ${run[1]}`).toBe(true);
      }
    });
  }
});

describe('the tools\' --help', () => {
  it('shows the npm command users run, and every file it cites exists in the repository', async () => {
    const { DEMO_HELP } = await import('../bench/demo.ts');
    const { HELP } = await import('../bench/load/cli.ts');
    const { FLEET_HELP } = await import('../bench/sim/fleet.ts');
    const { USAGE } = await import('../bench/gateway/cli.ts');
    for (const [tool, text] of [['demo', DEMO_HELP], ['load', HELP], ['sim', FLEET_HELP], ['gateway', USAGE]] as const) {
      expect(text, tool).toMatch(new RegExp(`^Usage: npm run ${tool} --`));
      for (const m of text.matchAll(/(?:^|[\s(`])((?:[\w-]+\/)+[\w.-]+\.(?:md|ts|yaml|json))\b/g)) {
        expect(existsSync(new URL(`../${m[1]}`, import.meta.url)), `${tool} --help cites ${m[1]}`).toBe(true);
      }
    }
  });
});
