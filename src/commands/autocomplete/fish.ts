import {Command} from '@oclif/core'
import {fishCompletion, type CompletableCommand} from '../../cli/completion.js'

export default class AutocompleteFish extends Command {
  static override summary = 'Print the fish completion script (bash, zsh and powershell: pgrep autocomplete).'
  static override description =
    'fish loads completions from ~/.config/fish/completions; regenerate the file after upgrading pgrep.'
  static override examples = ['<%= config.bin %> autocomplete fish > ~/.config/fish/completions/<%= config.bin %>.fish']

  async run(): Promise<void> {
    await this.parse(AutocompleteFish)
    process.stdout.write(
      fishCompletion(
        this.config.bin,
        this.config.commands as unknown as CompletableCommand[],
        this.config.topicSeparator,
      ),
    )
  }
}
