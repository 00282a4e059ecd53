// The public API, checked so that an accidental breaking change fails the tests:
//
// 1. An API report: the declarations the package exports ('pg-replicate', 'pg-replicate/duckdb',
//    'pg-replicate/bigquery'), as the TypeScript compiler emits them into .d.ts files (in memory, from
//    src/: no build needed), without comments and private members, compared with the committed
//    api/pgrep.api.md. When the change is intended: `npm run api:update`, and commit the file.
// 2. Type-level checks of the key types (expectTypeOf), compiled by this test itself: `npm test`
//    does not type-check test files, so the test asks the compiler for this file's errors.
// 3. `import 'pg-replicate'` loads neither DuckDB nor the Google Cloud client.
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import ts from 'typescript'
import {describe, expect, expectTypeOf, it} from 'vitest'
import type {BigQuerySink} from '../../src/api/bigquery.js'
import type {DuckDbSink} from '../../src/api/duckdb.js'
import {
  Pipeline,
  runPipeline,
  StdoutSink,
  TransformSink,
  UNCHANGED_TOAST,
  type BatchCommitted,
  type ChangeEvent,
  type Checkpoint,
  type ColumnValue,
  type Lsn,
  type PipelineEvents,
  type PipelineOptions,
  type PipelineResult,
  type ResumeState,
  type Sink,
  type TableCopyWriter,
  type TableSchema,
  type TupleData,
} from '../../src/index.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const REPORT = path.join(root, 'api/pgrep.api.md')
const THIS_FILE = fileURLToPath(import.meta.url)

/** Package entry points: subpath → source file. */
const ENTRIES: Record<string, string> = {
  'pg-replicate': 'src/index.ts',
  'pg-replicate/duckdb': 'src/api/duckdb.ts',
  'pg-replicate/bigquery': 'src/api/bigquery.ts',
  'pg-replicate/testing': 'src/api/testing.ts',
}

interface Compiled {
  report: string
  /** Type errors in this test file (the expectTypeOf checks below). */
  typeErrors: string[]
}

function compile(): Compiled {
  const configPath = path.join(root, 'tsconfig.build.json')
  const config = ts.getParsedCommandLineOfConfigFile(
    configPath,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'))
      },
    },
  )!
  // Declarations go to a directory that is never written: the files stay in memory.
  const outDir = path.join(root, '.api-report')
  const options: ts.CompilerOptions = {
    ...config.options,
    rootDir: root,
    outDir,
    declaration: true,
    emitDeclarationOnly: true,
    declarationMap: false,
    sourceMap: false,
    noEmit: false,
  }
  const rootNames = [...Object.values(ENTRIES).map((f) => path.join(root, f)), THIS_FILE]
  const program = ts.createProgram({rootNames, options})
  const typeErrors = ts
    .getPreEmitDiagnostics(program, program.getSourceFile(THIS_FILE))
    .map(
      (d) =>
        `${d.file ? `line ${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ` : ''}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`,
    )
  const emitted = new Map<string, string>()
  const result = program.emit(undefined, (file, text) => emitted.set(path.resolve(file), text), undefined, true)
  if (result.emitSkipped) throw new Error('declaration emit failed')

  // A second program over the emitted declarations: what a user of the package compiles against.
  const dts = (f: string) => path.join(outDir, f.replace(/\.ts$/, '.d.ts'))
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.fileExists = (f) => emitted.has(path.resolve(f)) || ts.sys.fileExists(f)
  host.readFile = (f) => emitted.get(path.resolve(f)) ?? ts.sys.readFile(f)
  host.directoryExists = (d) =>
    path.resolve(d) === outDir || path.resolve(d).startsWith(outDir + path.sep) || ts.sys.directoryExists(d)
  host.getSourceFile = (f, lang, onError, create) => {
    const text = emitted.get(path.resolve(f))
    return text !== undefined ? ts.createSourceFile(f, text, lang, true) : getSourceFile(f, lang, onError, create)
  }
  const dtsProgram = ts.createProgram({
    rootNames: Object.values(ENTRIES).map(dts),
    options: {...options, noEmit: true},
    host,
  })
  const checker = dtsProgram.getTypeChecker()
  const printer = ts.createPrinter({removeComments: true, newLine: ts.NewLineKind.LineFeed})

  const exported = new Set<ts.Symbol>()
  const entries = Object.entries(ENTRIES).map(([name, file]) => {
    const sf = dtsProgram.getSourceFile(dts(file))!
    const moduleSymbol = checker.getSymbolAtLocation(sf)!
    const symbols = checker
      .getExportsOfModule(moduleSymbol)
      .map((s) => ({name: s.name, target: s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s}))
    for (const s of symbols) exported.add(s.target)
    return {name, symbols: symbols.sort((a, b) => a.name.localeCompare(b.name))}
  })

  const ours = (d: ts.Node) => path.resolve(d.getSourceFile().fileName).startsWith(outDir + path.sep)
  const forgotten = new Map<string, Set<string>>()
  const sections = entries.map(({name, symbols}) => {
    const blocks = symbols.map(({name: exportName, target}) => {
      const decls = (target.declarations ?? []).filter(ours)
      const text = decls.map((d) => printDeclaration(d, printer)).join('\n')
      for (const d of decls) {
        visitTypeReferences(d, checker, (ref) => {
          if (
            !exported.has(ref) &&
            (ref.declarations ?? []).some(ours) &&
            !(ref.flags & ts.SymbolFlags.TypeParameter)
          ) {
            if (!forgotten.has(ref.name)) forgotten.set(ref.name, new Set())
            forgotten.get(ref.name)!.add(`${name}:${exportName}`)
          }
        })
      }
      return text === '' ? `// ${exportName}: declared outside the package` : text
    })
    return `## \`${name}\`\n\n\`\`\`ts\n${blocks.join('\n\n')}\n\`\`\`\n`
  })
  const forgottenText =
    forgotten.size === 0
      ? 'None.\n'
      : [...forgotten]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([n, users]) => `- \`${n}\`, used by ${[...users].sort().join(', ')}`)
          .join('\n') + '\n'
  const report = [
    '# API report of the pg-replicate package (CLI: pgrep)',
    '',
    '<!-- Generated by test/unit/public-api.test.ts from the TypeScript declarations of the package entry points. Do not edit: run `npm run api:update`. -->',
    '',
    'Everything a program can import from the package, without comments and private members.',
    'A change to this file in a commit is a change of the public API: review it as such.',
    '',
    ...sections,
    '## Types used by the API but not exported',
    '',
    'A user sees these in signatures but cannot import them by name (nor does TypeDoc document them): export them, or keep the list short.',
    '',
    forgottenText,
  ].join('\n')
  return {report, typeErrors}
}

function isPrivate(m: ts.Node): boolean {
  return ts.canHaveModifiers(m) && (ts.getModifiers(m) ?? []).some((x) => x.kind === ts.SyntaxKind.PrivateKeyword)
}

function printDeclaration(d: ts.Node, printer: ts.Printer): string {
  const sf = d.getSourceFile()
  let node: ts.Node = ts.isVariableDeclaration(d) ? d.parent.parent : d
  if (ts.isClassDeclaration(node)) {
    node = ts.factory.updateClassDeclaration(
      node,
      node.modifiers,
      node.name,
      node.typeParameters,
      node.heritageClauses,
      node.members.filter((m) => !isPrivate(m)),
    )
  }
  return printer.printNode(ts.EmitHint.Unspecified, node, sf)
}

/** Every named type a declaration's public part refers to (private class members excluded). */
function visitTypeReferences(d: ts.Node, checker: ts.TypeChecker, found: (s: ts.Symbol) => void): void {
  const visit = (n: ts.Node): void => {
    if (isPrivate(n)) return
    let name: ts.Node | undefined
    if (ts.isTypeReferenceNode(n)) name = n.typeName
    else if (ts.isExpressionWithTypeArguments(n)) name = n.expression
    else if (ts.isTypeQueryNode(n)) name = n.exprName
    if (name) {
      let s = checker.getSymbolAtLocation(name)
      if (s && s.flags & ts.SymbolFlags.Alias) s = checker.getAliasedSymbol(s)
      if (s) found(s)
    }
    ts.forEachChild(n, visit)
  }
  visit(ts.isVariableDeclaration(d) ? d.parent.parent : d)
}

describe('public API', () => {
  const compiled = compile()

  it('matches the committed API report (api/pgrep.api.md)', () => {
    if (process.env.PGREP_API_UPDATE === '1') {
      writeFileSync(REPORT, compiled.report)
      return
    }
    let committed = ''
    try {
      committed = readFileSync(REPORT, 'utf8')
    } catch {
      // first run: compared with '' below, the message says what to do
    }
    expect(
      compiled.report,
      'The public API of the package changed (diff below: - committed, + now). If that is intended, run `npm run api:update` and commit api/pgrep.api.md; if not, restore the declaration.',
    ).toBe(committed)
  })

  it('type-checks the key types below', () => {
    expect(compiled.typeErrors).toEqual([])
  })

  it('keeps DuckDB and the Google Cloud client out of `import "pg-replicate"`', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgrep-lazy-'))
    try {
      const hooks = path.join(dir, 'hooks.mjs')
      writeFileSync(
        hooks,
        `import {register} from 'node:module'
register('data:text/javascript,' + encodeURIComponent(\`export async function resolve(specifier, context, next) {
  const r = await next(specifier, context)
  if (/node_modules\\\\/(@duckdb|@google-cloud)\\\\//.test(r.url)) throw new Error('loaded eagerly: ' + r.url)
  return r
}\`))
`,
      )
      const run = (file: string) =>
        execFileSync(
          process.execPath,
          [
            '--import',
            'tsx',
            '--import',
            hooks,
            '--input-type=module',
            '-e',
            `await import(${JSON.stringify(path.join(root, file))}); console.log('imported')`,
          ],
          {
            cwd: root,
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        )
      expect(run('src/index.ts')).toBe('imported\n')
      // The hook does catch a heavy import: the DuckDB subpath trips it.
      expect(() => run('src/api/duckdb.ts')).toThrow(/loaded eagerly: .*@duckdb/)
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})

// ---- Type-level checks (compiled by the test 'type-checks the key types below') ----

// The change events: one tagged union, narrowed by `op`.
expectTypeOf<ChangeEvent['op']>().toEqualTypeOf<'insert' | 'update' | 'delete' | 'truncate' | 'message' | 'schema'>()
expectTypeOf<Extract<ChangeEvent, {op: 'insert'}>['new']>().toEqualTypeOf<TupleData>()
expectTypeOf<Extract<ChangeEvent, {op: 'update'}>['old']>().toEqualTypeOf<TupleData | null>()
expectTypeOf<Extract<ChangeEvent, {op: 'delete'}>['old']>().toEqualTypeOf<TupleData>()
expectTypeOf<Extract<ChangeEvent, {op: 'insert'}>['table']>().toEqualTypeOf<TableSchema>()
expectTypeOf<Extract<ChangeEvent, {op: 'truncate'}>['tables']>().toEqualTypeOf<TableSchema[]>()
expectTypeOf<ColumnValue>().toEqualTypeOf<string | Uint8Array | null | typeof UNCHANGED_TOAST>()
expectTypeOf<Lsn>().toEqualTypeOf<bigint>()
expectTypeOf<Extract<ChangeEvent, {op: 'insert'}>['commitLsn']>().toEqualTypeOf<Lsn>()

// The Sink interface: exactly these members, and the built-in sinks implement it.
expectTypeOf<keyof Sink>().toEqualTypeOf<
  | 'name'
  | 'exactlyOnce'
  | 'partialTransactions'
  | 'open'
  | 'inspect'
  | 'dropState'
  | 'checkTables'
  | 'startTableCopy'
  | 'setTableStates'
  | 'beginBatch'
  | 'write'
  | 'stageStreamed'
  | 'commitBatch'
  | 'abortBatch'
  | 'earliestCommitAt'
  | 'fillsAddedColumn'
  | 'recordResyncs'
  | 'pendingResyncs'
  | 'close'
>()
expectTypeOf<Sink['open']>().returns.resolves.toEqualTypeOf<ResumeState>()
expectTypeOf<Sink['commitBatch']>().parameters.toEqualTypeOf<[checkpoint: Checkpoint]>()
expectTypeOf<Sink['write']>().parameters.toEqualTypeOf<[events: readonly ChangeEvent[]]>()
expectTypeOf<Sink['startTableCopy']>().returns.resolves.toEqualTypeOf<TableCopyWriter>()
expectTypeOf<StdoutSink>().toExtend<Sink>()
expectTypeOf<DuckDbSink>().toExtend<Sink>()
expectTypeOf<BigQuerySink>().toExtend<Sink>()
expectTypeOf<TransformSink>().toExtend<Sink>()

// The pipeline.
expectTypeOf(Pipeline).constructorParameters.toEqualTypeOf<[options: PipelineOptions]>()
expectTypeOf<Pipeline['run']>().returns.resolves.toEqualTypeOf<PipelineResult>()
expectTypeOf<PipelineResult['end']>().toEqualTypeOf<'stop-lsn' | 'signal' | 'copied'>()
expectTypeOf<keyof PipelineEvents>().toEqualTypeOf<'batch' | 'copy-progress' | 'warning' | 'error'>()
expectTypeOf<PipelineEvents['batch']>().toEqualTypeOf<[info: BatchCommitted]>()
expectTypeOf(runPipeline).returns.resolves.toEqualTypeOf<PipelineResult>()
expectTypeOf<PipelineOptions['mode']>().toEqualTypeOf<'sync' | 'cdc' | 'copy' | undefined>()
expectTypeOf<PipelineOptions['signal']>().toEqualTypeOf<AbortSignal | undefined>()
expectTypeOf<PipelineOptions['untilLsn']>().toEqualTypeOf<Lsn | string | undefined>()
