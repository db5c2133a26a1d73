#!/usr/bin/env node
// Package hygiene that `npm test` can check without building or packing (scripts/pack-smoke.mjs checks the rest):
//
// - every `bin` of every workspace package is a committed file under bin/ that starts with `#!/usr/bin/env node`,
//   never a file under dist/: pnpm links the bins of workspace dependencies at install time, before any build, and
//   a missing target prints "Failed to create bin" on a newcomer's first `pnpm install`;
// - every publishable package (packages/*, not private) has README.md and LICENSE, ships its bin/ and examples/
//   directories (`files`), says `"license": "MIT"` and `"publishConfig": {"access": "public"}`.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Problems with the workspace packages under `root`. */
export function checkPackages(root = ROOT) {
  const problems = [];
  for (const group of ['packages', 'apps']) {
    for (const d of readdirSync(join(root, group)).sort()) {
      const dir = join(root, group, d);
      if (!existsSync(join(dir, 'package.json'))) continue;
      const where = `${group}/${d}`;
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      const bins = typeof pkg.bin === 'string' ? { [pkg.name]: pkg.bin } : (pkg.bin ?? {});
      for (const [name, target] of Object.entries(bins)) {
        const rel = target.replace(/^\.\//, '');
        if (!rel.startsWith('bin/')) {
          problems.push(`${where}: bin ${name} points at ${target}, not a committed file under bin/`);
        } else if (!existsSync(join(dir, rel))) {
          problems.push(`${where}: bin ${name}: ${target} does not exist`);
        } else if (!readFileSync(join(dir, rel), 'utf8').startsWith('#!/usr/bin/env node\n')) {
          problems.push(`${where}: bin ${name}: ${target} does not start with #!/usr/bin/env node`);
        }
      }
      if (group !== 'packages' || pkg.private) continue;
      for (const f of ['README.md', 'LICENSE']) {
        if (!existsSync(join(dir, f))) problems.push(`${where}: publishable but has no ${f}`);
      }
      if (pkg.license !== 'MIT') problems.push(`${where}: license is ${pkg.license}, expected MIT`);
      // A scoped package is published restricted (and refused without a paid plan) unless it says otherwise.
      if (pkg.publishConfig?.access !== 'public') problems.push(`${where}: publishConfig.access is not "public"`);
      const files = pkg.files ?? [];
      if (Object.keys(bins).length > 0 && !files.includes('bin')) problems.push(`${where}: "files" lacks bin`);
      if (existsSync(join(dir, 'examples')) && !files.includes('examples')) {
        problems.push(`${where}: "files" lacks examples`);
      }
    }
  }
  return problems;
}

if (relative(process.argv[1] ?? '', fileURLToPath(import.meta.url)) === '') {
  const problems = checkPackages();
  if (problems.length > 0) {
    console.error(`check-packages: ${problems.length} problem(s):\n${problems.join('\n')}`);
    process.exit(1);
  }
  console.log('check-packages: bins are committed files; publishable packages have README, LICENSE, bin, examples');
}
