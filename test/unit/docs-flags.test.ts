// docs/commands.md's flag reference is generated from the commands' definitions (the ones --help
// prints): this fails when a flag, its summary, default or values changed without
// `npm run docs:flags`.
import {readFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import {BEGIN, DOC, END, renderFlagDocs} from '../../scripts/docs-flags.js'
import Sync from '../../src/commands/sync.js'

describe('docs/commands.md', () => {
  it('holds the flag tables the definitions produce (run npm run docs:flags after changing a flag)', async () => {
    const doc = readFileSync(DOC, 'utf8')
    const region = doc.slice(doc.indexOf(BEGIN), doc.indexOf(END) + END.length)
    expect(region).toBe(await renderFlagDocs())
  })

  it('lists every flag of a command with its variable and default', async () => {
    const region = await renderFlagDocs()
    const sync = region.slice(region.indexOf('### `pgrep sync` flags'))
    for (const name of Object.keys(Sync.flags)) expect(sync).toContain(`| \`--${name}\``)
    expect(sync).toMatch(/\| `--parallel` \| `PGREP_PARALLEL` \/ `parallel:` \| integer \(1\.\.64\) \| `4` \|/)
  })
})
