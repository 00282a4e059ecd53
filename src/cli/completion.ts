// Shell completion for fish, which oclif's autocomplete plugin (bash, zsh, powershell) does not
// cover. Generated from the loaded commands' flag definitions, so it cannot drift from them.

/** The parts of an oclif command (Command.Loadable) the script needs. */
export interface CompletableCommand {
  id: string
  hidden?: boolean
  summary?: string
  description?: string
  flags: Record<
    string,
    {
      type: 'boolean' | 'option'
      char?: string
      options?: readonly string[]
      summary?: string
      description?: string
      allowNo?: boolean
      hidden?: boolean
    }
  >
}

/** fish single-quoted string: only \ and ' are special. */
function q(text: string): string {
  return `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`
}

function oneLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0]!.trim()
}

/** A fish script: `pgrep <TAB>` completes commands; `pgrep sync --<TAB>` that command's flags and their values. */
export function fishCompletion(bin: string, commands: CompletableCommand[], topicSeparator = ' '): string {
  const firstLine = (text: string | undefined) => oneLine(text).replaceAll('<%= config.bin %>', bin)
  const visible = commands.filter((c) => !c.hidden).sort((a, b) => a.id.localeCompare(b.id))
  const lines = [
    `# fish completion for ${bin}: save as ~/.config/fish/completions/${bin}.fish`,
    `complete -c ${bin} -f`,
  ]
  // First words: commands, and topics of commands with a space in their name (autocomplete fish).
  const first = new Map<string, string>()
  for (const c of visible) {
    const [head] = c.id.split(':')
    if (!first.has(head!) || c.id === head) first.set(head!, firstLine(c.summary ?? c.description))
  }
  for (const [word, summary] of first)
    lines.push(`complete -c ${bin} -n __fish_use_subcommand -f -a ${word}${summary ? ` -d ${q(summary)}` : ''}`)
  for (const c of visible) {
    const words = c.id.split(':')
    const seen = `-n ${q(`__fish_seen_subcommand_from ${words[0]}`)}`
    // The second word of a topic's commands (autocomplete fish).
    if (words.length > 1)
      lines.push(
        `complete -c ${bin} ${seen} -f -a ` +
          `${words.slice(1).join(topicSeparator)}${c.summary ? ` -d ${q(firstLine(c.summary))}` : ''}`,
      )
    for (const [name, f] of Object.entries(c.flags).sort(([a], [b]) => a.localeCompare(b))) {
      if (f.hidden) continue
      const what = firstLine(f.summary ?? f.description)
      const desc = what ? ` -d ${q(what)}` : ''
      const short = f.char ? ` -s ${f.char}` : ''
      if (f.type === 'boolean') {
        lines.push(`complete -c ${bin} ${seen} -l ${name}${short}${desc}`)
        if (f.allowNo) lines.push(`complete -c ${bin} ${seen} -l no-${name}${desc}`)
      } else if (f.options && f.options.length > 0) {
        lines.push(`complete -c ${bin} ${seen} -l ${name}${short} -r -f -a ${q(f.options.join(' '))}${desc}`)
      } else {
        // Paths are common values (--duckdb-path, --config, --bq-key-file): let fish offer files.
        lines.push(`complete -c ${bin} ${seen} -l ${name}${short} -r -F${desc}`)
      }
    }
  }
  return `${lines.join('\n')}\n`
}
