import CSupport
import CXDP
import Glibc
import VSwiftClassifier
import VSwiftPacket

/// Port I/O: one round over the worker's rx sources (sockets, then taps), receiving bursts and
/// handing them to the pipeline (Worker+Forwarding.swift), refilling fill rings, staging output
/// frames per port, and at the end of the round flushing them to tx rings (or taps), kicking the
/// kernel and taking completed frames back. Worker thread only.
extension Worker {
    /// One round over every rx source; returns how many frames were received.
    @inline(__always)
    func pollOnce() -> Int {
        now = Self.monotonicSeconds()
        // remote_ip=map: resolutions are renewed every 20 s (WorkerMapCache), checked once a round.
        if mapCache.hasPorts { mapCache.renewEpochIfDue(now: now) }
        // Keys the XDP flow cache's installer lost: forgotten before this round's lookups.
        if flowCacheInstalling { forgetLostHandOvers() }
        var received = 0
        for i in 0..<activeCount {
            received &+= receive(slot: Int(activeSlots[i]))
        }
        // A tap has no ring to peek: every look is a read() system call. While the sockets keep
        // the worker busy, a look that found nothing skips the taps for `tapIdleSkip` rounds
        // (well under a millisecond); otherwise (and once a tap delivers) they are read every round.
        if tapPortCount > 0 {
            if tapSkipRounds > 0 && received > 0 {
                tapSkipRounds -= 1
            } else {
                var fromTaps = 0
                for i in 0..<tapPortCount {
                    fromTaps &+= receiveFromTap(port: tapPorts[i])
                }
                received &+= fromTaps
                tapSkipRounds = fromTaps > 0 ? 0 : Self.tapIdleSkip
            }
        }
        flushStaged()
        for i in 0..<activeCount {
            let slot = Int(activeSlots[i])
            reclaimCompletions(slot: slot)
            // Copy mode transmits inside sendto, a bounded batch per call: keep kicking while the
            // kernel has not consumed everything we submitted.
            if sockets[slot].txOutstanding > 0, vs_ring_prod_unconsumed(&sockets[slot].tx) > 0 {
                kick(slot: slot)
            }
        }
        return received
    }

    /// Takes one burst from a socket's rx ring through the pipeline: classified as a burst when
    /// the port's bridge has a flow table, through NORMAL when it has none, frame by frame (for
    /// decapsulation) when the port is in no bridge (an underlay port).
    @inline(__always)
    private func receive(slot: Int) -> Int {
        let socket = sockets + slot
        var index: UInt32 = 0
        let n = Int(xsk_ring_cons__peek(&socket.pointee.rx, UInt32(rxBatch), &index))
        guard n > 0 else {
            refill(slot: slot)
            return 0
        }
        let inPort = socket.pointee.portIndex
        let bridge = ports[inPort.index].bridge
        normalMemo.bridge = -1
        // The kernel has just written these frames, on another CPU in copy mode: start loading the
        // first `prefetchAhead` headers now, and each later one that many frames before it is
        // needed, so the misses overlap each other and the work on earlier frames. (Prefetching
        // a whole burst at once stalls: the core tracks only a few dozen misses.)
        for i in 0..<min(n, Self.prefetchAhead) {
            vs_prefetch(base + Int(xsk_ring_cons__rx_desc(&socket.pointee.rx, index &+ UInt32(i)).pointee.addr))
        }
        // With LISP ports, frames may be encapsulated into their headroom: a line nobody has
        // touched since the frame was last used. Ask for it now too.
        if tunnelPortCount > 0 {
            for i in 0..<n {
                vs_prefetch_write(base + Int(xsk_ring_cons__rx_desc(&socket.pointee.rx, index &+ UInt32(i)).pointee.addr) - 64)
            }
        }
        // A running capture copies the burst before any action changes it.
        let captureTaps = ports[inPort.index].captureRx
        if captureTaps != 0 { captureReceived(socket, first: index, count: n, taps: captureTaps) }
        var bytes: UInt64 = 0
        if let bridgeIndex = bridge.index, let table = bridges[bridgeIndex].flowTable {
            // The common case, classified as a burst. (With LISP ports, a frame that may be LISP
            // for a local RLOC goes on its own, after the frames before it: see forwardBurst.)
            bytes = forwardBurst(slot: slot, first: index, count: n, inPort: inPort, bridge: bridge, table: table)
        } else if bridge != .unbridged {
            // A plain learning bridge.
            bytes = normalBurst(socket, slot: slot, first: index, count: n, inPort: inPort, bridge: bridge, counting: nil, rule: .miss)
        } else {
            for i in 0..<n {
                guard let desc = takeReceived(socket, first: index, i, count: n, slot: slot, inPort: inPort, bytes: &bytes) else { continue }
                forward(address: desc.addr, length: desc.len, inPort: inPort, bridge: bridge)
            }
        }
        xsk_ring_cons__release(&socket.pointee.rx, UInt32(n))
        socket.pointee.fillOutstanding &-= UInt32(n)
        vs_add_relaxed_u64(&counters[inPort.index].rxPackets, UInt64(n))
        vs_add_relaxed_u64(&counters[inPort.index].rxBytes, bytes)
        refill(slot: slot)
        return n
    }

    /// How many frames ahead of the one being processed a frame's header is prefetched.
    static let prefetchAhead = 16

    /// While frame `i` of the burst at rx `index` is processed: prefetch the header of frame
    /// `i + prefetchAhead`.
    @inline(__always)
    func prefetchFrame(_ socket: UnsafeMutablePointer<XSKSocket>, _ index: UInt32, ahead i: Int, count: Int) {
        let j = i &+ Self.prefetchAhead
        guard j < count else { return }
        vs_prefetch(base + Int(xsk_ring_cons__rx_desc(&socket.pointee.rx, index &+ UInt32(j)).pointee.addr))
    }

    /// Frame `i` of the burst at rx index `first`: prefetches the one `prefetchAhead` further,
    /// takes this one from the kernel (adding its length to `bytes`), and returns its descriptor;
    /// nil when it is not the socket's to give (counted by the pool) or too short for Ethernet
    /// (an rx error, the frame freed).
    @inline(__always)
    func takeReceived(_ socket: UnsafeMutablePointer<XSKSocket>, first: UInt32, _ i: Int, count: Int, slot: Int,
                      inPort: PortSlot, bytes: inout UInt64) -> xdp_desc? {
        prefetchFrame(socket, first, ahead: i, count: count)
        let desc = xsk_ring_cons__rx_desc(&socket.pointee.rx, first &+ UInt32(i)).pointee
        guard pool.takeFromKernel(desc.addr, slot: slot) else { return nil }
        bytes &+= UInt64(desc.len)
        guard desc.len >= UInt32(Ethernet.headerLength) else {
            vs_add_relaxed_u64(&counters[inPort.index].rxErrors, 1)
            pool.release(desc.addr)
            return nil
        }
        return desc
    }

    /// Tops the socket's fill ring up to `fillTarget` frames from the pool.
    @inline(__always)
    func refill(slot: Int) {
        let socket = sockets + slot
        let deficit = fillTarget - Int(socket.pointee.fillOutstanding)
        guard deficit >= min(rxBatch, fillTarget) else { return }
        let n = min(deficit, pool.freeCount)
        guard n > 0 else { return }
        var index: UInt32 = 0
        let reserved = Int(xsk_ring_prod__reserve(&socket.pointee.fill, UInt32(n), &index))
        _ = pool.fill(socket.pointee.fill.ring.assumingMemoryBound(to: UInt64.self), mask: socket.pointee.fill.mask,
                      start: index, count: reserved, slot: slot)  // n ≤ the pool's free frames: all of them
        xsk_ring_prod__submit(&socket.pointee.fill, UInt32(reserved))
        socket.pointee.fillOutstanding &+= UInt32(reserved)
        if xsk_ring_prod__needs_wakeup(&socket.pointee.fill) != 0 {
            let start = vs_rdtsc()
            _ = recvfrom(socket.pointee.fd, nil, 0, Int32(MSG_DONTWAIT), nil, nil)
            roundSystemCallCycles &+= vs_rdtsc() &- start
        }
    }

    /// Reads up to one batch of frames the host stack sent out of a tap (internal) port, each
    /// through the pipeline on its own.
    @inline(__always)
    private func receiveFromTap(port: PortSlot) -> Int {
        let fd = ports[port.index].tapFD
        let bridge = ports[port.index].bridge
        let captureTaps = ports[port.index].captureRx
        normalMemo.bridge = -1
        var n = 0
        var bytes: UInt64 = 0
        while n < 32 {
            guard let frame = pool.allocate() else { break }
            let address = frame &+ DatapathLimits.tapHeadroom
            let start = vs_rdtsc()
            let got = read(fd, base + Int(address), Int(frameSize) - Int(DatapathLimits.tapHeadroom))
            roundSystemCallCycles &+= vs_rdtsc() &- start
            guard got > 0 else {
                pool.release(frame)
                break
            }
            n += 1
            bytes &+= UInt64(got)
            if captureTaps != 0 { captureFrame(address: address, length: UInt32(got), direction: .rx, taps: captureTaps) }
            forward(address: address, length: UInt32(got), inPort: port, bridge: bridge)
        }
        if n > 0 {
            vs_add_relaxed_u64(&counters[port.index].rxPackets, UInt64(n))
            vs_add_relaxed_u64(&counters[port.index].rxBytes, bytes)
        }
        return n
    }

    /// Queues a frame for a port's tx ring (or tap); flushed at the end of the round, or at once
    /// when the port's staging array is full. `options` are the descriptor's (XDP_TX_METADATA
    /// when TX metadata precedes the frame). Output to a LISP port goes through `output` instead.
    @inline(__always)
    func stage(port: PortSlot, address: UInt64, length: UInt32, options: UInt32 = 0) {
        let p = ports + port.index
        if p.pointee.stagedCount == Int32(DatapathLimits.stageCapacity) { flush(port: port) }
        if !p.pointee.isTouched {
            p.pointee.isTouched = true
            touched[touchedCount] = port
            touchedCount += 1
        }
        p.pointee.staged[Int(p.pointee.stagedCount)] = xdp_desc(addr: address, len: length, options: options)
        p.pointee.stagedCount += 1
    }

    /// Flushes every port something was staged for this round.
    @inline(__always)
    func flushStaged() {
        for i in 0..<touchedCount {
            let port = touched[i]
            flush(port: port)
            ports[port.index].isTouched = false
        }
        touchedCount = 0
    }

    /// Writes a port's staged frames to its tx ring (or tap), kicking the kernel if it asks.
    /// Never inlined: once per port and round, and inlined into `stage` (for a full stage) it
    /// would give every staged frame a large stack frame to set up.
    @inline(never)
    private func flush(port: PortSlot) {
        let p = ports + port.index
        let n = Int(p.pointee.stagedCount)
        // Debug builds (the tests) check that no staging loop wrote past the port's slots.
        assert(n <= DatapathLimits.stageCapacity, "port \(port) staged \(n) frames")
        guard n > 0 else { return }
        p.pointee.stagedCount = 0
        let staged = p.pointee.staged
        let counter = counters + port.index
        switch p.pointee.kind {
        case .xsk:
            let slot = Int(p.pointee.txSlot)
            let socket = sockets + slot
            var sendable = min(n, Int(xsk_prod_nb_free(&socket.pointee.tx, UInt32(n))))
            if sendable < n {
                kick(slot: slot)
                reclaimCompletions(slot: slot)
                sendable = min(n, Int(xsk_prod_nb_free(&socket.pointee.tx, UInt32(n))))
            }
            if sendable > 0 {
                if p.pointee.captureTx != 0 { captureStaged(staged, count: sendable, taps: p.pointee.captureTx) }
                var index: UInt32 = 0
                _ = xsk_ring_prod__reserve(&socket.pointee.tx, UInt32(sendable), &index)
                let bytes = pool.transmit(staged, count: sendable, into: socket.pointee.tx.ring.assumingMemoryBound(to: xdp_desc.self),
                                          mask: socket.pointee.tx.mask, start: index, slot: slot)
                xsk_ring_prod__submit(&socket.pointee.tx, UInt32(sendable))
                socket.pointee.txOutstanding &+= UInt32(sendable)
                vs_add_relaxed_u64(&counter.pointee.txPackets, UInt64(sendable))
                vs_add_relaxed_u64(&counter.pointee.txBytes, bytes)
                if xsk_ring_prod__needs_wakeup(&socket.pointee.tx) != 0 { kick(slot: slot) }
            }
            if sendable < n {
                for i in sendable..<n { pool.release(staged[i].addr) }
                vs_add_relaxed_u64(&counter.pointee.txDropped, UInt64(n - sendable))
            }
        case .tap:
            let fd = p.pointee.tapFD
            let captureTaps = p.pointee.captureTx
            var sent: UInt64 = 0
            var bytes: UInt64 = 0
            var dropped: UInt64 = 0
            var errors: UInt64 = 0
            for i in 0..<n {
                let desc = staged[i]
                let start = vs_rdtsc()
                let written = write(fd, base + Int(desc.addr), Int(desc.len))
                roundSystemCallCycles &+= vs_rdtsc() &- start
                if written == Int(desc.len) {
                    sent &+= 1
                    bytes &+= UInt64(desc.len)
                    if captureTaps != 0 { captureFrame(address: desc.addr, length: desc.len, direction: .tx, taps: captureTaps) }
                } else if written < 0 && (errno == EAGAIN || errno == ENOBUFS) {
                    dropped &+= 1
                } else {
                    errors &+= 1
                }
                pool.release(desc.addr)
            }
            vs_add_relaxed_u64(&counter.pointee.txPackets, sent)
            vs_add_relaxed_u64(&counter.pointee.txBytes, bytes)
            if dropped > 0 { vs_add_relaxed_u64(&counter.pointee.txDropped, dropped) }
            if errors > 0 { vs_add_relaxed_u64(&counter.pointee.txErrors, errors) }
        case .none, .lisp:
            for i in 0..<n { pool.release(staged[i].addr) }
            vs_add_relaxed_u64(&counter.pointee.txDropped, UInt64(n))
        }
    }

    /// Asks the kernel to transmit what the tx ring holds. Copy mode sends a bounded batch per
    /// call and answers EAGAIN while more remains.
    @inline(__always)
    private func kick(slot: Int) {
        let fd = sockets[slot].fd
        var attempts = 0
        let start = vs_rdtsc()
        while sendto(fd, nil, 0, Int32(MSG_DONTWAIT), nil, 0) < 0 {
            let err = errno
            attempts += 1
            guard err == EAGAIN || err == EBUSY, attempts < 8, vs_ring_prod_unconsumed(&sockets[slot].tx) > 0 else { break }
        }
        roundSystemCallCycles &+= vs_rdtsc() &- start
    }

    /// Returns transmitted frames from the completion ring to the pool.
    @inline(__always)
    func reclaimCompletions(slot: Int) {
        let socket = sockets + slot
        guard socket.pointee.txOutstanding > 0 else { return }
        var index: UInt32 = 0
        let n = xsk_ring_cons__peek(&socket.pointee.completion, socket.pointee.completion.size, &index)
        guard n > 0 else { return }
        pool.recycle(UnsafePointer(socket.pointee.completion.ring.assumingMemoryBound(to: UInt64.self)),
                     mask: socket.pointee.completion.mask, start: index, count: Int(n), slot: slot)
        xsk_ring_cons__release(&socket.pointee.completion, n)
        socket.pointee.txOutstanding &-= n
    }
}
