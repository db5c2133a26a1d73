/**
 * `pnpm check:tsdoc`: every public export of every workspace package has a TSDoc comment.
 *
 * For each package's entry point (`src/index.ts`) it asks the TypeScript checker for the module's exports and, for
 * each one, for the documentation of the declaration it resolves to (following re-exports). It also checks the
 * public members of exported classes and interfaces, since those are what a user calls. Prints every export without
 * a comment (file:line and name) and exits 1 if there is any, so `npm test` fails when a new export is undocumented.
 *
 *   pnpm check:tsdoc              # all packages
 *   pnpm check:tsdoc core sim     # only these (directory names under packages/ or apps/)
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The entry points: `packages/<name>/src/index.ts` and `apps/<name>/src/index.ts`. */
function entries(only: string[]): string[] {
  const found: string[] = [];
  for (const group of ['packages', 'apps']) {
    for (const name of readdirSync(join(ROOT, group)).sort()) {
      if (only.length > 0 && !only.includes(name)) continue;
      const file = join(ROOT, group, name, 'src', 'index.ts');
      if (existsSync(file)) found.push(file);
    }
  }
  return found;
}

/** Where a declaration is, as `path:line` relative to the repository. */
function where(decl: ts.Declaration): string {
  const sf = decl.getSourceFile();
  const { line } = sf.getLineAndCharacterOfPosition(decl.getStart());
  return `${relative(ROOT, sf.fileName)}:${line + 1}`;
}

/** True when the declaration (or, for a variable, its statement) carries a `/** ... *\/` comment. */
function hasDoc(decl: ts.Declaration): boolean {
  let node: ts.Node = decl;
  // `export const x = ...`: the comment sits on the variable statement, two levels up.
  if (ts.isVariableDeclaration(node)) node = node.parent.parent;
  return ts.getJSDocCommentsAndTags(node).length > 0;
}

/**
 * Members whose comment would only repeat the code: a discriminant (`type: 'AppendEntries'`, a string literal type)
 * and an Error subclass's `name = '...'`.
 */
function selfExplanatory(m: ts.ClassElement | ts.TypeElement): boolean {
  const name = m.name !== undefined && ts.isIdentifier(m.name) ? m.name.text : '';
  if (name === 'type' && ts.isPropertySignature(m) && m.type !== undefined && ts.isLiteralTypeNode(m.type)) return true;
  return (
    name === 'name' && ts.isPropertyDeclaration(m) && m.initializer !== undefined && ts.isStringLiteral(m.initializer)
  );
}

/** Public members of a class or interface that need their own comment. */
function members(decl: ts.Declaration): ts.NamedDeclaration[] {
  if (!ts.isClassDeclaration(decl) && !ts.isInterfaceDeclaration(decl)) return [];
  const out: ts.NamedDeclaration[] = [];
  for (const m of decl.members as ts.NodeArray<ts.ClassElement | ts.TypeElement>) {
    if (ts.isConstructorDeclaration(m) || ts.isIndexSignatureDeclaration(m)) continue;
    if (m.name === undefined) continue;
    const mods = ts.canHaveModifiers(m) ? (ts.getModifiers(m) ?? []) : [];
    if (mods.some((x) => x.kind === ts.SyntaxKind.PrivateKeyword || x.kind === ts.SyntaxKind.ProtectedKeyword)) {
      continue;
    }
    if (ts.isPrivateIdentifier(m.name)) continue;
    if (selfExplanatory(m)) continue;
    out.push(m);
  }
  return out;
}

function main(): number {
  const files = entries(process.argv.slice(2));
  const config = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, 'tsconfig.base.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (config === undefined) throw new Error('cannot read tsconfig.base.json');
  const program = ts.createProgram(files, { ...config.options, noEmit: true });
  const checker = program.getTypeChecker();
  const missing: string[] = [];
  let checked = 0;
  for (const file of files) {
    const sf = program.getSourceFile(file);
    const moduleSymbol = sf === undefined ? undefined : checker.getSymbolAtLocation(sf);
    if (moduleSymbol === undefined) throw new Error(`cannot load ${relative(ROOT, file)}`);
    const pkg = relative(ROOT, dirname(dirname(file)));
    for (const exported of checker.getExportsOfModule(moduleSymbol)) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      for (const decl of symbol.declarations ?? []) {
        checked++;
        if (!hasDoc(decl)) missing.push(`${where(decl)}  ${pkg}: ${exported.name}`);
        for (const m of members(decl)) {
          checked++;
          if (!hasDoc(m)) missing.push(`${where(m)}  ${pkg}: ${exported.name}.${m.name?.getText()}`);
        }
      }
    }
  }
  if (missing.length > 0) {
    console.error(`check:tsdoc: ${missing.length} of ${checked} public declarations have no TSDoc comment:`);
    for (const line of [...new Set(missing)].sort()) console.error(`  ${line}`);
    return 1;
  }
  console.log(`check:tsdoc: all ${checked} public declarations in ${files.length} packages are documented`);
  return 0;
}

process.exit(main());
