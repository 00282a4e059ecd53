// oclif's help, plus what its root help has no place for: examples of the README's use cases, and
// how flags also come from PGREP_* variables and a config file (every command's help).
import {Help} from '@oclif/core'

type Loadable = Parameters<Help['formatCommand']>[0]

export const CONFIGURATION_HELP =
  `Every flag can also be set as an environment variable PGREP_<FLAG> (--batch-max-rows: PGREP_BATCH_MAX_ROWS; ` +
  `booleans take true/false/1/0/yes/no; repeatable flags a comma-separated list, commas inside double quotes ` +
  `kept, or a JSON array) or as a key of the --config file (YAML or JSON; PGREP_CONFIG names it). Precedence: ` +
  `flags, then PGREP_* variables, then the config file, then the defaults.`

const ROOT_EXAMPLES: [string, string][] = [
  ['Terminal: follow changes as JSON lines', 'pgrep cdc --source postgres://app@db/shop --publication shop_pub | jq .'],
  ['Keep a DuckDB file equal to a publication', 'pgrep sync --publication shop_pub --duckdb-path shop.duckdb'],
  ['Cron, every 5 minutes: catch up and exit', '*/5 * * * * pgrep sync --config /etc/pgrep/shop.yaml --once'],
  [
    'Shell script: nightly backfill, then alert on lag',
    'pgrep copy-table --publication shop_pub --duckdb-path shop.duckdb && pgrep status --slot shop_sync ' +
      '--json || alert "pgrep"',
  ],
]

export default class PgrepHelp extends Help {
  protected override async showRootHelp(): Promise<void> {
    await super.showRootHelp()
    const bin = this.config.bin
    // Like oclif's command examples: no "$" before a crontab line.
    const examples = ROOT_EXAMPLES.map(
      ([what, cmd]) => `${what}\n  ${/^[\d*]/.test(cmd) ? '' : '$ '}${cmd.replaceAll('pgrep ', `${bin} `)}`,
    ).join('\n\n')
    this.log(this.section('EXAMPLES', examples))
    this.log('')
    this.log(this.section('CONFIGURATION', this.wrap(CONFIGURATION_HELP)))
    this.log('')
  }

  protected override formatCommand(command: Loadable): string {
    return `${super.formatCommand(command)}\n\n${this.section('CONFIGURATION', this.wrap(CONFIGURATION_HELP))}`
  }
}
