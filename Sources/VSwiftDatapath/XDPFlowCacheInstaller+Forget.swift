import VSwiftPacket

/// The installer's side of the forget channel (DESIGN.md, "Megaflows and revalidation", *Lost
/// hand-overs*): a worker's exact-match cache keeps a flow it handed over, so the flow never
/// misses again; when the installer loses that hand-over (an early key pushed out or replaced) or
/// refuses it for a reason that may not recur (`installEntry`'s `.askAgain`, a stale version), it
/// sends the key back to that worker (`Worker.flowCacheForgets`), which forgets it once per round
/// (`Worker.forgetLostHandOvers`): the flow's next frame misses and is handed over again. Under the
/// lock — the one producer of every forget ring, whichever thread holds it. A full ring drops the
/// key, counted (`forgetOverflow`).
extension XDPFlowCacheInstaller {
    /// What became of a key `installEntry` was given, for the worker that handed it over.
    enum InstallOutcome: Equatable {
        /// Installed, or refused for a reason that stays (or kept to retry): nothing to tell.
        case settled
        /// Refused for a reason that may not recur: the worker should forget the key.
        case askAgain
    }

    /// Sends `key` (classified with table `version` for `bridge`) back to `worker` to forget.
    func forget(_ key: FlowKey, version: UInt64, bridge: Int32, worker: Int) {
        guard worker >= 0, worker < forgets.count else { return }
        let ring = forgets[worker]
        guard let slot = ring.reserve() else {
            ring.noteRefused(1)
            return
        }
        slot.pointee.key = key
        slot.pointee.version = version
        slot.pointee.bridge = bridge
        ring.commit()
    }

    /// An early key of `bridge` that will not be installed, back to its worker.
    func forget(_ held: XDPFlowCacheEarlyKeys.Held, bridge: Int32) {
        forget(held.key, version: held.version, bridge: bridge, worker: held.worker)
    }
}
