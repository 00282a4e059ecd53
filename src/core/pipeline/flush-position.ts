// The flush position reported to Postgres: what the server may forget (and recycle WAL up to).
//
// It is the end LSN of the last transaction whose batch the sink has committed, never more. When
// nothing is pending (no open transaction, no open batch, no streamed transaction held), a later
// position is safe too: that of the last keepalive, or of a heartbeat/watermark message of our own
// that arrived then. So an idle publication does not hold WAL back.
import type {Lsn} from '../lsn.js'
import type {ReplicationStream} from '../postgres/replication.js'
import type {Checkpoint} from './sink.js'

/** What the tracker needs of the stream: telling the server the position. */
export type FlushTarget = Pick<ReplicationStream, 'confirm' | 'sendStatus'>

export class FlushPosition {
  /** Last checkpoint the sink has committed (a whole transaction, or a piece: Checkpoint.partial). */
  durable: Checkpoint | null = null
  /** Highest position confirmed to the server. */
  private confirmed: Lsn = 0n
  /** Position of the last heartbeat/watermark received with nothing pending. */
  private ownMessageLsn: Lsn = 0n

  /** Position to restart streaming from after a reconnect. */
  get resumeLsn(): Lsn {
    const cp = this.durable?.endLsn ?? 0n
    return cp > this.confirmed ? cp : this.confirmed
  }

  /** A keepalive that found nothing pending: everything the server sent up to `walEnd` is applied. */
  confirmIdle(walEnd: Lsn, stream: FlushTarget): void {
    if (walEnd > this.confirmed) {
      this.confirmed = walEnd
      stream.confirm(walEnd)
    }
  }

  /** One of our own messages (heartbeat, watermark) that arrived with nothing pending. */
  ownMessage(lsn: Lsn): void {
    if (lsn > this.ownMessageLsn) this.ownMessageLsn = lsn
  }

  /**
   * Confirms the durable position, or the last own message's when `idle`. `sendNow` sends a
   * status update even when the position did not move (the stream is about to close).
   */
  confirm(stream: FlushTarget, idle: boolean, sendNow = false): void {
    let lsn = this.durable?.endLsn ?? 0n
    if (this.ownMessageLsn > lsn && idle) lsn = this.ownMessageLsn
    if (lsn > this.confirmed) {
      this.confirmed = lsn
      stream.confirm(lsn, sendNow)
    } else if (sendNow) {
      stream.sendStatus(false)
    }
  }
}
