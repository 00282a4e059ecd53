// The protocol decoder: backend message framing, the replication envelope, pgoutput.
export * from './messages.js'
export {ProtocolError} from './errors.js'
export {Reader} from './reader.js'
export {BackendFramer, FrameCode, MAX_FRAME_LENGTH, parseErrorFields, type ErrorFields, type Frame} from './frames.js'
export {decodeReplicationMessage, encodeStandbyStatus, STANDBY_STATUS_SIZE} from './replication.js'
export {isStreamBlockBoundary, PgoutputDecoder} from './pgoutput.js'
