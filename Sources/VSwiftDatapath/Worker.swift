import CSupport
import CXDP
import Glibc
import Synchronization
import VSwiftClassifier
import VSwiftPacket

/// Datapath-wide limits: tables are allocated once, at these sizes, so the packet path never grows them.
public enum DatapathLimits {
    public static let maxPorts = 256
    public static let maxBridges = 64
    public static let maxSocketsPerWorker = 256
    /// Rule counter slots per worker (reserved virtual memory; only used slots take pages).
    public static let maxRules = 1 << 21
    /// Frames staged for one output port before its tx ring is written.
    static let stageCapacity = 256
    /// Room in front of a frame the switch itself receives (tap reads), for later encapsulation.
    static let tapHeadroom: UInt64 = 256
}

/// One worker's counters for one port: one cache line, written only by that worker.
package struct PortCounterBlock {
    var rxPackets: UInt64 = 0
    var rxBytes: UInt64 = 0
    package var rxDropped: UInt64 = 0
    var rxErrors: UInt64 = 0
    var txPackets: UInt64 = 0
    var txBytes: UInt64 = 0
    var txDropped: UInt64 = 0
    var txErrors: UInt64 = 0
}

/// Where a worker's time goes, in time-stamp-counter cycles (one cache line, written only by the
/// worker, read relaxed). `busy` and `idle` are rounds over the rx sources that did / did not
/// receive frames, each without the time spent inside system calls (tx kicks, fill-ring wakeups,
/// tap reads and writes), which is `systemCalls`. The sleep in poll() between idle rounds is in
/// none of them. busy + idle is the worker's user-space time, measured to the cycle (unlike the
/// kernel's tick-sampled utime); busy divided by packets is user cycles per packet.
public struct WorkerCycles: Sendable, Equatable {
    public var busy: UInt64 = 0
    public var idle: UInt64 = 0
    public var systemCalls: UInt64 = 0
    public var rounds: UInt64 = 0
    public init() {}
    public init(busy: UInt64, idle: UInt64, systemCalls: UInt64, rounds: UInt64) {
        self.busy = busy
        self.idle = idle
        self.systemCalls = systemCalls
        self.rounds = rounds
    }
    public static func - (a: WorkerCycles, b: WorkerCycles) -> WorkerCycles {
        WorkerCycles(busy: a.busy &- b.busy, idle: a.idle &- b.idle, systemCalls: a.systemCalls &- b.systemCalls,
                     rounds: a.rounds &- b.rounds)
    }
    public static func + (a: WorkerCycles, b: WorkerCycles) -> WorkerCycles {
        WorkerCycles(busy: a.busy &+ b.busy, idle: a.idle &+ b.idle, systemCalls: a.systemCalls &+ b.systemCalls,
                     rounds: a.rounds &+ b.rounds)
    }
}

package enum PortKind: UInt8 {
    case none
    case xsk
    case tap
    /// A LISP tunnel port: output encapsulates, input comes from decapsulation.
    case lisp
}

/// One worker's counters for one rule (32 bytes; only the owning worker writes them).
package struct RuleCounterBlock {
    package var packets: UInt64 = 0
    package var bytes: UInt64 = 0
    package var lastUsed: UInt64 = 0
    var reserved: UInt64 = 0
}

/// NORMAL's decision for the previous frame of the current rx burst: a run of frames with the
/// same addresses (the usual burst) learns and looks up once. Valid only within one burst (the
/// worker clears it when a burst starts): the frames in between were this one alone, whose own
/// learning is already in the table, so the answer is the same; another worker's concurrent
/// change is seen from the next burst on, the same race as two lookups of the shared table.
struct NormalMemo {
    /// The frame's first 12 bytes (destination and source address) as two plain loads.
    var addresses: (UInt64, UInt32) = (0, 0)
    var inPort: UInt16 = 0
    var bridge = -1
    var out: UInt16 = MACLearningTable.noPort

    @inline(__always)
    static func addresses(of frame: UnsafeRawPointer) -> (UInt64, UInt32) {
        (frame.loadUnaligned(as: UInt64.self), frame.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
    }

    @inline(__always)
    func matches(_ addresses: (UInt64, UInt32), inPort: UInt16, bridge: Int) -> Bool {
        self.bridge == bridge && self.addresses == addresses && self.inPort == inPort
    }
}

/// A port as one worker sees it.
struct WorkerPort {
    var kind: PortKind = .none
    var bridge: Int32 = -1
    /// OpenFlow port number (in_port of frames received here); 0 until the control plane sets it.
    var ofport: UInt32 = 0
    /// This worker's socket (slot) that transmits on the port.
    var txSlot: Int32 = -1
    /// This worker's queue fd of a tap port.
    var tapFD: Int32 = -1
    var staged: UnsafeMutablePointer<xdp_desc>
    var stagedCount: Int32 = 0
    var isTouched = false
}

/// A bridge as one worker sees it: its flow table, learning table and member ports.
struct WorkerBridge {
    /// nil: no flow table published, the bridge is a plain learning switch (NORMAL).
    var flowTable: Unmanaged<CompiledFlowTable>?
    var macTable: MACLearningTable?
    var ports: UnsafeMutablePointer<UInt16>
    var portCount: Int = 0
}

/// Frame census of one worker, for the accounting invariant: every frame is in exactly one place.
public struct FrameAccounting: Sendable, CustomStringConvertible {
    public let worker: Int
    public let total: Int
    public let free: Int
    /// Frames the worker holds between bursts: must be 0 when parked.
    public let inWorker: Int
    /// Frames held by the kernel through open sockets (fill/rx and tx/completion rings).
    public let inKernel: Int
    /// Frames owned by sockets that are no longer open: must be 0.
    public let orphaned: Int
    /// What the worker's own counters say the kernel holds: must equal `inKernel`.
    public let kernelByCounters: Int
    /// Ownership transitions that found the wrong owner (a duplicated or foreign address): must be 0.
    public let violations: UInt64

    public var isConsistent: Bool {
        free + inWorker + inKernel + orphaned == total && inWorker == 0 && orphaned == 0
            && inKernel == kernelByCounters && violations == 0
    }

    public var description: String {
        "worker \(worker): total=\(total) free=\(free) in-worker=\(inWorker) in-kernel=\(inKernel) (counters say \(kernelByCounters)) orphaned=\(orphaned) violations=\(violations)"
    }
}

/// A worker thread: owns one UMEM and the sockets on it, and runs the receive → forward → transmit
/// loop over them in bursts. Nothing on this path allocates, locks or retains: all tables are raw
/// memory sized at creation, and the control thread changes them only while the worker is parked.
package final class Worker: @unchecked Sendable {
    let index: Int
    let umem: UmemArea
    package let base: UnsafeMutableRawPointer
    let frameSize: UInt32
    let rings: RingSizes
    package let rxBatch: Int
    var pool: FramePool
    /// Frames each socket's fill ring is kept topped up to.
    var fillTarget: Int

    package let sockets: UnsafeMutablePointer<XSKSocket>
    /// Slots of open sockets, polled for rx in this order.
    let activeSlots: UnsafeMutablePointer<Int32>
    var activeCount = 0
    let ports: UnsafeMutablePointer<WorkerPort>
    package let counters: UnsafeMutablePointer<PortCounterBlock>
    let bridges: UnsafeMutablePointer<WorkerBridge>
    /// Tap ports this worker reads (its queue of each internal port).
    let tapPorts: UnsafeMutablePointer<UInt16>
    var tapPortCount = 0
    /// Busy rounds left before the taps are read again (see pollOnce).
    var tapSkipRounds = 0
    static let tapIdleSkip = 8
    let touched: UnsafeMutablePointer<UInt16>
    var touchedCount = 0
    let pollFDs: UnsafeMutablePointer<pollfd>
    var pollCount = 0
    /// Coarse monotonic seconds, refreshed once per round (MAC aging, rule idle times).
    var now: UInt64 = 0
    /// See NormalMemo; reset at the start of every rx burst.
    var normalMemo = NormalMemo()
    package internal(set) var cache = ExactMatchCache()
    let ruleCounters: UnsafeMutablePointer<RuleCounterBlock>
    /// The flow key of the packet being classified.
    let key: UnsafeMutablePointer<FlowKey>
    /// This worker's cycle accounting (see `WorkerCycles`), and the system-call cycles of the
    /// current round.
    let cycles: UnsafeMutablePointer<WorkerCycles>
    var roundSystemCallCycles: UInt64 = 0
    /// The frames of a burst being classified together (see Worker+Classify.swift).
    let burst = ClassifyBurst()

    // Tunnels (see Worker+Tunnel.swift).
    static let maxLocalRLOCs = 64
    let tunnelPortStates: UnsafeMutablePointer<TunnelPortState>
    let tunnelCounters: UnsafeMutablePointer<TunnelCounterBlock>
    let tunnelPorts: UnsafeMutablePointer<UInt16>
    var tunnelPortCount = 0
    let tunnelUDPPorts: UnsafeMutablePointer<UInt16>
    var tunnelUDPPortCount = 0
    let localRLOCs: UnsafeMutablePointer<IPAddress>
    var localRLOCCount = 0
    /// Where the underlay is (see UnderlayEndpoint); at most `maxLocalRLOCs`.
    let underlayEndpoints: UnsafeMutablePointer<UnderlayEndpoint>
    var underlayEndpointCount = 0
    let nextHops = TunnelNextHopTable()
    let tunnelRequests = TunnelRequestRing()
    /// Written to ask the resolver for a next hop (set by the datapath; -1: none).
    var tunnelResolverFD: Int32 = -1
    let outer: UnsafeMutablePointer<LISP.OuterHeaders>
    var ipIdentification: UInt16 = 0
    /// Tunnel metadata of the packet being processed (tun_id, tun_src, tun_dst): set by
    /// decapsulation and by set_tunnel/set_field actions, read by encapsulation.
    var tunnelID: UInt64 = 0
    var tunnelSource: UInt32 = 0
    var tunnelDestination: UInt32 = 0
    /// How many encapsulations deep the current frame is (see `maxTunnelDepth`).
    var tunnelDepth = 0

    // Control handshake: the control thread asks the worker to park between bursts, changes tables,
    // then lets it run again. Checked once per round with one acquire load.
    enum State {
        static let running = 0
        static let parkRequested = 1
        static let parked = 2
        static let stopRequested = 3
        static let stopped = 4
    }
    let state = Atomic<Int>(State.running)
    let threadID = Atomic<Int32>(0)
    let wakeFD: Int32
    private var thread: pthread_t?
    private var pinnedCPU: Int?
    /// Frames awaiting completion at the last idle wait, and how many waits saw no change.
    private var lastOutstanding: UInt64 = 0
    private var stalledWaits = 0

    package init(index: Int, frameCount: UInt32, frameSize: UInt32, rings: RingSizes, rxBatch: Int) throws(DatapathError) {
        self.index = index
        self.umem = try UmemArea(frameCount: frameCount, frameSize: frameSize)
        self.base = umem.base
        self.frameSize = frameSize
        self.rings = rings
        self.rxBatch = rxBatch
        self.pool = FramePool(frameCount: frameCount, frameSize: frameSize)
        self.fillTarget = min(Int(rings.fill) / 2, Int(frameCount) / 2)
        sockets = .allocate(capacity: DatapathLimits.maxSocketsPerWorker)
        sockets.initialize(repeating: XSKSocket(), count: DatapathLimits.maxSocketsPerWorker)
        activeSlots = .allocate(capacity: DatapathLimits.maxSocketsPerWorker)
        let staging = UnsafeMutablePointer<xdp_desc>.allocate(capacity: DatapathLimits.maxPorts * DatapathLimits.stageCapacity)
        ports = .allocate(capacity: DatapathLimits.maxPorts)
        for i in 0..<DatapathLimits.maxPorts {
            (ports + i).initialize(to: WorkerPort(staged: staging + i * DatapathLimits.stageCapacity))
        }
        let counterMemory = UnsafeMutableRawPointer.allocate(
            byteCount: DatapathLimits.maxPorts * MemoryLayout<PortCounterBlock>.stride, alignment: 64)
        counters = counterMemory.bindMemory(to: PortCounterBlock.self, capacity: DatapathLimits.maxPorts)
        counters.initialize(repeating: PortCounterBlock(), count: DatapathLimits.maxPorts)
        bridges = .allocate(capacity: DatapathLimits.maxBridges)
        for i in 0..<DatapathLimits.maxBridges {
            (bridges + i).initialize(to: WorkerBridge(macTable: nil, ports: .allocate(capacity: DatapathLimits.maxPorts)))
        }
        tapPorts = .allocate(capacity: DatapathLimits.maxPorts)
        touched = .allocate(capacity: DatapathLimits.maxPorts)
        pollFDs = .allocate(capacity: 1 + DatapathLimits.maxSocketsPerWorker + DatapathLimits.maxPorts)
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        // Reserved, not committed: a page is only backed once a rule in it counts a packet.
        let counterBytes = DatapathLimits.maxRules * MemoryLayout<RuleCounterBlock>.stride
        let counterArea = mmap(nil, counterBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let counterArea, counterArea != MAP_FAILED else { throw .system(SystemError("mmap rule counters")) }
        ruleCounters = counterArea.bindMemory(to: RuleCounterBlock.self, capacity: DatapathLimits.maxRules)
        key = .allocate(capacity: 1)
        key.initialize(to: FlowKey())
        let cycleMemory = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        cycles = cycleMemory.bindMemory(to: WorkerCycles.self, capacity: 1)
        cycles.initialize(to: WorkerCycles())
        tunnelPortStates = .allocate(capacity: DatapathLimits.maxPorts)
        tunnelPortStates.initialize(repeating: TunnelPortState(), count: DatapathLimits.maxPorts)
        let tunnelCounterMemory = UnsafeMutableRawPointer.allocate(
            byteCount: DatapathLimits.maxPorts * MemoryLayout<TunnelCounterBlock>.stride, alignment: 64)
        tunnelCounters = tunnelCounterMemory.bindMemory(to: TunnelCounterBlock.self, capacity: DatapathLimits.maxPorts)
        tunnelCounters.initialize(repeating: TunnelCounterBlock(), count: DatapathLimits.maxPorts)
        tunnelPorts = .allocate(capacity: DatapathLimits.maxPorts)
        tunnelUDPPorts = .allocate(capacity: 8)
        localRLOCs = .allocate(capacity: Self.maxLocalRLOCs)
        localRLOCs.initialize(repeating: IPAddress(), count: Self.maxLocalRLOCs)
        underlayEndpoints = .allocate(capacity: Self.maxLocalRLOCs)
        underlayEndpoints.initialize(repeating: UnderlayEndpoint(), count: Self.maxLocalRLOCs)
        outer = .allocate(capacity: 1)
        outer.initialize(to: LISP.OuterHeaders())
        now = Self.monotonicSeconds()
        rebuildPollSet()
    }

    deinit {
        for slot in 0..<DatapathLimits.maxSocketsPerWorker where sockets[slot].isOpen { sockets[slot].close() }
        sockets.deinitialize(count: DatapathLimits.maxSocketsPerWorker)
        sockets.deallocate()
        activeSlots.deallocate()
        ports[0].staged.deallocate()
        ports.deallocate()
        UnsafeMutableRawPointer(counters).deallocate()
        for i in 0..<DatapathLimits.maxBridges { bridges[i].ports.deallocate() }
        bridges.deallocate()
        tapPorts.deallocate()
        touched.deallocate()
        pollFDs.deallocate()
        pool.destroy()
        cache.destroy()
        burst.destroy()
        munmap(ruleCounters, DatapathLimits.maxRules * MemoryLayout<RuleCounterBlock>.stride)
        key.deallocate()
        UnsafeMutableRawPointer(cycles).deallocate()
        tunnelPortStates.deallocate()
        UnsafeMutableRawPointer(tunnelCounters).deallocate()
        tunnelPorts.deallocate()
        tunnelUDPPorts.deallocate()
        localRLOCs.deallocate()
        underlayEndpoints.deallocate()
        outer.deallocate()
        nextHops.destroy()
        close(wakeFD)
    }

    package static func monotonicSeconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        return UInt64(ts.tv_sec)
    }

    // MARK: Thread and control handshake

    func start(cpu: Int?) {
        pinnedCPU = cpu
        thread = startThread { self.run() }
    }

    func wake() { signalEventFD(wakeFD) }

    /// Tells the tunnel resolver a request is waiting in `tunnelRequests`.
    func tunnelResolverWake() {
        guard tunnelResolverFD >= 0 else { return }
        signalEventFD(tunnelResolverFD)
    }

    /// Blocks until the worker is parked between bursts. Returns at once if it is not running.
    func park() {
        guard thread != nil else { return }
        var expected = State.running
        guard state.compareExchange(expected: expected, desired: State.parkRequested, ordering: .acquiringAndReleasing).exchanged else {
            expected = state.load(ordering: .acquiring)
            precondition(expected == State.parked || expected >= State.stopRequested, "worker parked twice")
            return
        }
        wake()
        while state.load(ordering: .acquiring) != State.parked { usleep(50) }
    }

    func unpark() {
        if state.load(ordering: .acquiring) == State.parked {
            state.store(State.running, ordering: .releasing)
        }
    }

    func stop() {
        guard let thread else { return }
        state.store(State.stopRequested, ordering: .releasing)
        wake()
        pthread_join(thread, nil)
        self.thread = nil
    }

    private func run() {
        threadID.store(vs_gettid(), ordering: .releasing)
        if let cpu = pinnedCPU { _ = vs_pin_to_cpu(Int32(cpu)) }
        var idleRounds = 0
        while true {
            let current = state.load(ordering: .acquiring)
            if current != State.running {
                if current >= State.stopRequested { break }
                if current == State.parkRequested {
                    state.store(State.parked, ordering: .releasing)
                }
                while state.load(ordering: .acquiring) == State.parked { usleep(50) }
                continue
            }
            if accountedPoll() > 0 {
                idleRounds = 0
            } else {
                idleRounds += 1
                if idleRounds >= 64 {
                    waitForWork()
                    idleRounds = 0
                }
            }
        }
        state.store(State.stopped, ordering: .releasing)
    }

    /// Sleeps in poll() until a socket or tap has input, the control thread wakes us, or — while
    /// transmitted frames still await completion — a millisecond passes.
    private func waitForWork() {
        var outstanding: UInt64 = 0
        for i in 0..<activeCount { outstanding &+= UInt64(sockets[Int(activeSlots[i])].txOutstanding) }
        // Completions that stop coming (the device vanished under its sockets) must not keep the
        // worker waking every millisecond: after a while without progress, wait as when idle.
        if outstanding == 0 || outstanding != lastOutstanding {
            stalledWaits = 0
        } else {
            stalledWaits &+= 1
        }
        lastOutstanding = outstanding
        _ = poll(pollFDs, nfds_t(pollCount), outstanding > 0 && stalledWaits < 100 ? 1 : 100)
        if pollFDs[0].revents != 0 {
            var value: UInt64 = 0
            _ = read(wakeFD, &value, 8)
        }
    }

    /// Rebuilds the poll set after sockets or taps change (control thread, worker parked).
    func rebuildPollSet() {
        pollFDs[0] = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
        var n = 1
        for i in 0..<activeCount {
            pollFDs[n] = pollfd(fd: sockets[Int(activeSlots[i])].fd, events: Int16(POLLIN), revents: 0)
            n += 1
        }
        for i in 0..<tapPortCount {
            pollFDs[n] = pollfd(fd: ports[Int(tapPorts[i])].tapFD, events: Int16(POLLIN), revents: 0)
            n += 1
        }
        pollCount = n
        // Share the frames among the fill rings, keeping half the pool for frames in flight.
        let perSocket = Int(pool.frameCount) / 2 / max(activeCount, 1)
        fillTarget = max(min(perSocket, Int(rings.fill) / 2), 1)
    }

    // MARK: The packet path

    /// One round (`pollOnce`) with its cycles added to the worker's accounting (`WorkerCycles`).
    @inline(__always)
    package func accountedPoll() -> Int {
        roundSystemCallCycles = 0
        let start = vs_rdtsc()
        let received = pollOnce()
        let user = (vs_rdtsc() &- start) &- roundSystemCallCycles
        vs_add_relaxed_u64(&cycles.pointee.systemCalls, roundSystemCallCycles)
        vs_add_relaxed_u64(&cycles.pointee.rounds, 1)
        if received > 0 {
            vs_add_relaxed_u64(&cycles.pointee.busy, user)
        } else {
            vs_add_relaxed_u64(&cycles.pointee.idle, user)
        }
        return received
    }

    /// One round over every rx source; returns how many frames were received.
    @inline(__always)
    func pollOnce() -> Int {
        now = Self.monotonicSeconds()
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
        let bridge = ports[Int(inPort)].bridge
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
        var bytes: UInt64 = 0
        if bridge >= 0, let table = bridges[Int(bridge)].flowTable {
            // The common case, classified as a burst. (With LISP ports, a frame that may be LISP
            // for a local RLOC goes on its own, after the frames before it: see forwardBurst.)
            bytes = forwardBurst(slot: slot, first: index, count: n, inPort: inPort, bridge: bridge, table: table)
        } else if bridge >= 0 {
            // A plain learning bridge.
            bytes = normalBurst(socket, slot: slot, first: index, count: n, inPort: inPort, bridge: bridge, counting: nil, rule: -1)
        } else {
            for i in 0..<n {
                guard let desc = takeReceived(socket, first: index, i, count: n, slot: slot, inPort: inPort, bytes: &bytes) else { continue }
                forward(address: desc.addr, length: desc.len, inPort: inPort, bridge: bridge)
            }
        }
        xsk_ring_cons__release(&socket.pointee.rx, UInt32(n))
        socket.pointee.fillOutstanding &-= UInt32(n)
        vs_add_relaxed_u64(&counters[Int(inPort)].rxPackets, UInt64(n))
        vs_add_relaxed_u64(&counters[Int(inPort)].rxBytes, bytes)
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
                      inPort: UInt16, bytes: inout UInt64) -> xdp_desc? {
        prefetchFrame(socket, first, ahead: i, count: count)
        let desc = xsk_ring_cons__rx_desc(&socket.pointee.rx, first &+ UInt32(i)).pointee
        guard pool.takeFromKernel(desc.addr, slot: slot) else { return nil }
        bytes &+= UInt64(desc.len)
        guard desc.len >= UInt32(Ethernet.headerLength) else {
            vs_add_relaxed_u64(&counters[Int(inPort)].rxErrors, 1)
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

    /// Reads up to one batch of frames the host stack sent out of a tap (internal) port.
    @inline(__always)
    private func receiveFromTap(port: UInt16) -> Int {
        let fd = ports[Int(port)].tapFD
        let bridge = ports[Int(port)].bridge
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
            forward(address: address, length: UInt32(got), inPort: port, bridge: bridge)
        }
        if n > 0 {
            vs_add_relaxed_u64(&counters[Int(port)].rxPackets, UInt64(n))
            vs_add_relaxed_u64(&counters[Int(port)].rxBytes, bytes)
        }
        return n
    }

    /// Sends a received frame on: decapsulated if it is LISP for a local RLOC, else through its
    /// bridge.
    @inline(__always)
    func forward(address: UInt64, length: UInt32, inPort: UInt16, bridge: Int32) {
        guard length >= UInt32(Ethernet.headerLength) else {
            vs_add_relaxed_u64(&counters[Int(inPort)].rxErrors, 1)
            pool.release(address)
            return
        }
        if tunnelPortCount > 0,
           LISP.mayBeLISP(base + Int(address), length: Int(length), udpPorts: tunnelUDPPorts, count: tunnelUDPPortCount),
           receiveTunnelled(address: address, length: length, inPort: inPort) { return }
        guard bridge >= 0 else {
            // An underlay port (in no bridge) carries only tunnel traffic.
            vs_add_relaxed_u64(&counters[Int(inPort)].rxDropped, 1)
            pool.release(address)
            return
        }
        tunnelID = 0
        tunnelSource = 0
        tunnelDestination = 0
        process(address: address, length: length, inPort: inPort, bridge: bridge)
    }

    /// Runs a frame through a bridge: the flow table if one is published, else NORMAL.
    @inline(__always)
    func process(address: UInt64, length: UInt32, inPort: UInt16, bridge: Int32) {
        guard bridge >= 0 else {
            pool.release(address)
            return
        }
        guard let table = bridges[Int(bridge)].flowTable else {
            normal(address: address, length: length, inPort: inPort, bridge: Int(bridge))
            return
        }
        table._withUnsafeGuaranteedRef { table in
            FlowExtractor.extract(
                base + Int(address), length: Int(length), inPort: ports[Int(inPort)].ofport,
                tunnelID: tunnelID, tunnelSource: tunnelSource, tunnelDestination: tunnelDestination, into: key)
            let payload = cache.lookup(key, in: table.classifier)
            apply(table, payload: payload, address: address, length: length, inPort: inPort, bridge: bridge)
        }
    }

    /// Counts the frame on the rule the classifier returned and runs its actions; a table miss
    /// (payload -1) drops it, as OpenFlow does.
    @inline(__always)
    func apply(_ table: CompiledFlowTable, payload: Int32, address: UInt64, length: UInt32, inPort: UInt16, bridge: Int32) {
        guard payload >= 0 else {
            vs_add_relaxed_u64(&counters[Int(inPort)].rxDropped, 1)
            pool.release(address)
            return
        }
        let rule = table.rules + Int(payload)
        let counter = ruleCounters + Int(rule.pointee.counterSlot)
        vs_add_relaxed_u64(&counter.pointee.packets, 1)
        vs_add_relaxed_u64(&counter.pointee.bytes, UInt64(length))
        if counter.pointee.lastUsed != now { vs_store_relaxed_u64(&counter.pointee.lastUsed, now) }
        execute(rule.pointee, table.actions, address: address, length: length, inPort: inPort, bridge: Int(bridge))
    }

    /// Most output actions (output, NORMAL, FLOOD, ALL) one frame executes; see DESIGN.md, "Flow
    /// limits". A rule may have up to `FlowRule.maxActions` (1024) actions.
    package static let maxOutputsPerPacket = 64

    /// Runs a rule's actions on the frame, in place. Outputs before the last get a copy of the frame
    /// as it is at that point; the last output gets the frame itself; no output frees it.
    @inline(__always)
    func execute(_ rule: CompiledRule, _ actions: UnsafeMutablePointer<CompiledAction>,
                         address: UInt64, length: UInt32, inPort: UInt16, bridge: Int) {
        var address = address
        var length = Int(length)
        let program = actions + Int(rule.actionStart)
        var outputs = 0
        for i in 0..<Int(rule.actionCount) {
            let action = program + i
            let op = action.pointee.op
            switch op {
            case .output, .normal, .flood, .all:
                // OpenFlow: output to the input port by number sends nothing; only IN_PORT reflects.
                if op == .output && action.pointee.port == inPort { continue }
                // One frame may not take more than its share of the pool (the other ports' fill
                // rings draw on it): outputs past the budget are dropped and counted. Skipping the
                // last output leaves the frame to the release after the loop.
                outputs &+= 1
                if outputs > Worker.maxOutputsPerPacket {
                    vs_add_relaxed_u64(&counters[Int(inPort)].rxDropped, 1)
                    continue
                }
                var frame = address
                if i != Int(rule.lastOutput) {
                    guard let copy = copyFrame(address, length: length) else {
                        vs_add_relaxed_u64(&counters[Int(inPort)].rxDropped, 1)
                        continue
                    }
                    frame = copy
                }
                switch op {
                case .output:
                    let port = action.pointee.port == UInt16.max ? inPort : action.pointee.port
                    stage(port: port, address: frame, length: UInt32(length))
                case .normal:
                    normal(address: frame, length: UInt32(length), inPort: inPort, bridge: bridge)
                default:
                    flood(bridge: bridge, address: frame, length: UInt32(length), inPort: inPort)
                }
                if i == Int(rule.lastOutput) { return }
            case .setTunId:
                tunnelID = action.pointee.a
            case .setTunSrc:
                tunnelSource = UInt32(truncatingIfNeeded: action.pointee.a)
            case .setTunDst:
                tunnelDestination = UInt32(truncatingIfNeeded: action.pointee.a)
            default:
                let frameBase = address & ~(UInt64(frameSize) - 1)
                var start = base + Int(address)
                let headroom = Int(address - frameBase) - UmemArea.txMetadataRoom
                guard HeaderActions.apply(action.pointee, frame: &start, length: &length, headroom: headroom) else {
                    // dec_ttl reached zero: the packet dies here.
                    pool.release(address)
                    return
                }
                address = UInt64(start - base)
            }
        }
        pool.release(address)
    }

    /// A copy of the frame in a fresh UMEM frame at the same offset, or nil when the pool is empty.
    @inline(__always)
    private func copyFrame(_ address: UInt64, length: Int) -> UInt64? {
        guard let copy = pool.allocate() else { return nil }
        let offset = address & (UInt64(frameSize) - 1)
        memcpy(base + Int(copy &+ offset), base + Int(address), length)
        return copy &+ offset
    }

    /// NORMAL: learn the source, send to the learned port of the destination, else flood.
    @inline(__always)
    func normal(address: UInt64, length: UInt32, inPort: UInt16, bridge: Int) {
        let frame = base + Int(address)
        guard let table = bridges[bridge].macTable else {
            pool.release(address)
            return
        }
        let addresses = NormalMemo.addresses(of: frame)
        let out: UInt16
        if normalMemo.matches(addresses, inPort: inPort, bridge: bridge) {
            // The previous frame of this burst had the same addresses: it has learned the source
            // already, and nothing else changed the table since (see NormalMemo).
            out = normalMemo.out
        } else {
            let source = Ethernet.source(frame)
            let destination = Ethernet.destination(frame)
            if !Ethernet.isGroup(source) {
                table.learn(source, port: inPort, now: now)
            }
            out = Ethernet.isGroup(destination) ? MACLearningTable.noPort : table.lookup(destination, now: now)
            normalMemo = NormalMemo(addresses: addresses, inPort: inPort, bridge: bridge, out: out)
        }
        if out != MACLearningTable.noPort {
            // A frame for a host behind its own port is not reflected back (as OVS does).
            if out != inPort { stage(port: out, address: address, length: length) } else { pool.release(address) }
            return
        }
        flood(bridge: bridge, address: address, length: length, inPort: inPort)
    }

    /// Sends to every port of the bridge but the input: copies for all but the last, which gets the original.
    @inline(__always)
    private func flood(bridge: Int, address: UInt64, length: UInt32, inPort: UInt16) {
        let members = bridges[bridge]
        let offset = address & (UInt64(frameSize) - 1)
        var previous = MACLearningTable.noPort
        for i in 0..<members.portCount {
            let port = members.ports[i]
            if port == inPort { continue }
            if previous != MACLearningTable.noPort {
                if let copy = pool.allocate() {
                    memcpy(base + Int(copy &+ offset), base + Int(address), Int(length))
                    stage(port: previous, address: copy &+ offset, length: length)
                } else {
                    vs_add_relaxed_u64(&counters[Int(previous)].txDropped, 1)
                }
            }
            previous = port
        }
        if previous != MACLearningTable.noPort {
            stage(port: previous, address: address, length: length)
        } else {
            pool.release(address)
        }
    }

    /// Queues a frame for a port's tx ring; `options` are the descriptor's (XDP_TX_METADATA when
    /// TX metadata precedes the frame).
    @inline(__always)
    func stage(port: UInt16, address: UInt64, length: UInt32, options: UInt32 = 0) {
        let p = ports + Int(port)
        if p.pointee.kind == .lisp {
            sendThroughTunnel(port: port, address: address, length: length)
            return
        }
        if p.pointee.stagedCount == Int32(DatapathLimits.stageCapacity) { flush(port: port) }
        if !p.pointee.isTouched {
            p.pointee.isTouched = true
            touched[touchedCount] = port
            touchedCount += 1
        }
        p.pointee.staged[Int(p.pointee.stagedCount)] = xdp_desc(addr: address, len: length, options: options)
        p.pointee.stagedCount += 1
    }

    @inline(__always)
    private func flushStaged() {
        for i in 0..<touchedCount {
            let port = touched[i]
            flush(port: port)
            ports[Int(port)].isTouched = false
        }
        touchedCount = 0
    }

    /// Writes a port's staged frames to its tx ring (or tap), kicking the kernel if it asks.
    /// Never inlined: once per port and round, and inlined into `stage` (for a full stage) it
    /// would give every staged frame a large stack frame to set up.
    @inline(never)
    private func flush(port: UInt16) {
        let p = ports + Int(port)
        let n = Int(p.pointee.stagedCount)
        // Debug builds (the tests) check that no staging loop wrote past the port's slots.
        assert(n <= DatapathLimits.stageCapacity, "port \(port) staged \(n) frames")
        guard n > 0 else { return }
        p.pointee.stagedCount = 0
        let staged = p.pointee.staged
        let counter = counters + Int(port)
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

    // MARK: Reconfiguration (control thread, worker parked)

    /// Opens a socket on (device, queue) for `port`, zero-copy if the driver can, else copy mode.
    func openSocket(device: NetworkDevice, queue: UInt32, port: UInt16) throws(DatapathError) -> Int {
        guard let slot = (0..<DatapathLimits.maxSocketsPerWorker).first(where: { !sockets[$0].isOpen }) else {
            throw .unsupported("worker \(index) has no free socket slot")
        }
        let shareWith: Int32? = activeCount > 0 ? sockets[Int(activeSlots[0])].fd : nil
        let target = max(min(Int(pool.frameCount) / 2 / (activeCount + 1), Int(rings.fill) / 2), 1)
        var lastError: DatapathError = .unsupported("no bind mode")
        // Zero-copy where the driver has it, else copy mode; a socket sharing the UMEM inherits
        // the mode of the UMEM's first socket, so one UMEM cannot mix the two.
        let modes: [XSKBindMode] = shareWith == nil ? [.zeroCopy, .copy] : [sockets[Int(activeSlots[0])].mode]
        for mode in modes {
            do throws(DatapathError) {
                var socket = try XSKSocket.open(
                    device: device, queue: queue, umem: umem, shareWith: shareWith, rings: rings, mode: mode
                ) { socket in
                    var index: UInt32 = 0
                    let n = min(target, pool.freeCount)
                    let reserved = Int(xsk_ring_prod__reserve(&socket.fill, UInt32(n), &index))
                    for i in 0..<reserved {
                        guard let address = pool.allocate() else { break }
                        pool.handToKernel(address, slot: slot)
                        xsk_ring_prod__fill_addr(&socket.fill, index &+ UInt32(i)).pointee = address
                    }
                    xsk_ring_prod__submit(&socket.fill, UInt32(reserved))
                    socket.fillOutstanding = UInt32(reserved)
                }
                socket.portIndex = port
                sockets[slot] = socket
                activeSlots[activeCount] = Int32(slot)
                activeCount += 1
                rebuildPollSet()
                return slot
            } catch {
                _ = pool.reclaimAll(slot: slot)
                lastError = error
                if case .system(let sys) = error, sys.errno == EBUSY { break }
            }
        }
        throw lastError
    }

    /// Adds a socket with in-memory rings (see PipelineHarness), its fill ring topped up from the pool.
    package func attachInMemorySocket(port: UInt16, size: UInt32) -> Int {
        let slot = (0..<DatapathLimits.maxSocketsPerWorker).first(where: { !sockets[$0].isOpen })!
        var socket = XSKSocket.inMemory(size: size)
        socket.portIndex = port
        sockets[slot] = socket
        activeSlots[activeCount] = Int32(slot)
        activeCount += 1
        rebuildPollSet()
        refill(slot: slot)
        return slot
    }

    /// Closes a socket and takes back every frame the kernel held through it.
    func closeSocket(slot: Int) {
        sockets[slot].close()
        _ = pool.reclaimAll(slot: slot)
        if let position = (0..<activeCount).first(where: { activeSlots[$0] == Int32(slot) }) {
            for i in position..<(activeCount - 1) { activeSlots[i] = activeSlots[i + 1] }
            activeCount -= 1
        }
        rebuildPollSet()
    }

    package func setPort(_ port: UInt16, kind: PortKind, bridge: Int32, txSlot: Int32, tapFD: Int32) {
        let p = ports + Int(port)
        p.pointee.kind = kind
        p.pointee.bridge = bridge
        p.pointee.txSlot = txSlot
        p.pointee.tapFD = tapFD
        p.pointee.stagedCount = 0
        counters[Int(port)] = PortCounterBlock()
        if kind == .tap {
            tapPorts[tapPortCount] = port
            tapPortCount += 1
        }
        rebuildPollSet()
    }

    func clearPort(_ port: UInt16) {
        let p = ports + Int(port)
        if p.pointee.kind == .tap, let position = (0..<tapPortCount).first(where: { tapPorts[$0] == port }) {
            for i in position..<(tapPortCount - 1) { tapPorts[i] = tapPorts[i + 1] }
            tapPortCount -= 1
        }
        p.pointee.kind = .none
        p.pointee.ofport = 0
        p.pointee.bridge = -1
        p.pointee.txSlot = -1
        p.pointee.tapFD = -1
        rebuildPollSet()
    }

    package func setFlowTable(_ bridge: Int, _ table: CompiledFlowTable?) {
        bridges[bridge].flowTable = table.map { Unmanaged.passUnretained($0) }
    }

    package func setPortNumber(_ port: UInt16, ofport: UInt32) {
        ports[Int(port)].ofport = ofport
    }

    package func ruleCounters(_ slot: Int) -> RuleCounterBlock {
        let c = ruleCounters + slot
        return RuleCounterBlock(
            packets: vs_load_relaxed_u64(&c.pointee.packets), bytes: vs_load_relaxed_u64(&c.pointee.bytes),
            lastUsed: vs_load_relaxed_u64(&c.pointee.lastUsed))
    }

    /// Zeroes a rule counter slot that no published table uses (so no worker writes it).
    func clearRuleCounters(_ slot: Int) {
        let c = ruleCounters + slot
        vs_store_relaxed_u64(&c.pointee.packets, 0)
        vs_store_relaxed_u64(&c.pointee.bytes, 0)
        vs_store_relaxed_u64(&c.pointee.lastUsed, 0)
    }

    package func setBridge(_ bridge: Int, table: MACLearningTable?, members: [UInt16]) {
        bridges[bridge].macTable = table
        for (i, port) in members.enumerated() { bridges[bridge].ports[i] = port }
        bridges[bridge].portCount = members.count
    }

    /// The worker's cycle accounting so far (any thread).
    package func cycleAccounting() -> WorkerCycles {
        WorkerCycles(busy: vs_load_relaxed_u64(&cycles.pointee.busy), idle: vs_load_relaxed_u64(&cycles.pointee.idle),
                     systemCalls: vs_load_relaxed_u64(&cycles.pointee.systemCalls),
                     rounds: vs_load_relaxed_u64(&cycles.pointee.rounds))
    }

    func portCounters(_ port: UInt16) -> PortCounterBlock {
        let c = counters + Int(port)
        return PortCounterBlock(
            rxPackets: vs_load_relaxed_u64(&c.pointee.rxPackets), rxBytes: vs_load_relaxed_u64(&c.pointee.rxBytes),
            rxDropped: vs_load_relaxed_u64(&c.pointee.rxDropped), rxErrors: vs_load_relaxed_u64(&c.pointee.rxErrors),
            txPackets: vs_load_relaxed_u64(&c.pointee.txPackets), txBytes: vs_load_relaxed_u64(&c.pointee.txBytes),
            txDropped: vs_load_relaxed_u64(&c.pointee.txDropped), txErrors: vs_load_relaxed_u64(&c.pointee.txErrors))
    }

    /// Frame census (worker parked).
    package func accounting() -> FrameAccounting {
        let census = pool.census()
        var inKernel = 0
        var orphaned = 0
        for (slot, count) in census.kernel {
            if slot < DatapathLimits.maxSocketsPerWorker && sockets[slot].isOpen { inKernel += count } else { orphaned += count }
        }
        var byCounters = 0
        for i in 0..<activeCount {
            let s = sockets[Int(activeSlots[i])]
            byCounters += Int(s.fillOutstanding) + Int(s.txOutstanding)
        }
        return FrameAccounting(
            worker: index, total: Int(pool.frameCount), free: census.pool, inWorker: census.worker,
            inKernel: inKernel, orphaned: orphaned, kernelByCounters: byCounters, violations: pool.violations)
    }
}
