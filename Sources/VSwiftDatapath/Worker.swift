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

package enum PortKind: UInt8 {
    case none
    case xsk
    case tap
    /// A LISP tunnel port: output encapsulates, input comes from decapsulation.
    case lisp
}

/// A port as one worker sees it.
struct WorkerPort {
    var kind: PortKind = .none
    var bridge = BridgeSlot.unbridged
    /// OpenFlow port number (in_port of frames received here); unassigned until the control plane sets it.
    var ofport = OpenFlowPortNumber.unassigned
    /// This worker's socket (slot) that transmits on the port.
    var txSlot: Int32 = -1
    /// This worker's queue fd of a tap port.
    var tapFD: Int32 = -1
    var staged: UnsafeMutablePointer<xdp_desc>
    var stagedCount: Int32 = 0
    var isTouched = false
    /// Capture slots copying the frames this port receives / sends (bit i: `captureRings[i]`;
    /// Worker+Capture.swift). 0 unless a capture runs.
    var captureRx: UInt8 = 0
    var captureTx: UInt8 = 0
}

/// A bridge as one worker sees it: its flow table, learning table and member ports.
struct WorkerBridge {
    /// nil: no flow table published, the bridge is a plain learning switch (NORMAL).
    var flowTable: Unmanaged<CompiledFlowTable>?
    var macTable: MACLearningTable?
    var ports: UnsafeMutablePointer<PortSlot>
    var portCount: Int = 0
}

/// A worker thread: owns one UMEM and the sockets on it, and runs the receive → forward → transmit
/// loop over them in bursts. Nothing on this path allocates, locks or retains: all tables are raw
/// memory sized at creation, and the control thread changes them only while the worker is parked.
///
/// The worker's parts, one file each (as OVS's dpif-netdev separates thread, cache, classifier
/// and statistics):
/// - this file: the fields, the thread and its run loop, the park handshake;
/// - Worker+PortIO.swift: one round over the rx sources, receive, refill, tap reads, staging,
///   flush, kick, completions;
/// - Worker+Forwarding.swift: the pipeline (extract → classify → act) and the actions;
/// - Worker+Normal.swift: the NORMAL action (MAC learning, flooding);
/// - Worker+Tunnel.swift: LISP decapsulation and encapsulation;
/// - Worker+Reconfiguration.swift: what the control thread changes while the worker is parked;
/// - Worker+Counters.swift: the counters and what readers see of them;
/// - Worker+Trace.swift: a trace-mode worker (flow trace: one frame through this same code).
///
/// Who owns what. Two threads touch a worker: its own thread (the *worker thread*, started by
/// `start`) and the datapath's caller holding the datapath's lock (the *control thread*: any
/// thread, one at a time). Handover is the park handshake (`park`/`unpark`): the control thread
/// asks, the worker acknowledges between rounds with a release store of `parked`, and the control
/// thread's acquire load of it makes everything the worker wrote visible; `unpark`'s release store
/// of `running` hands the control thread's changes back the same way. So:
/// - **Set at creation, then read-only** (any thread): `index`, `umem`, `base`, `frameSize`,
///   `rings`, `rxBatch`, `wakeFD`, and every pointer field itself (the memory it points to is
///   owned as listed below).
/// - **Worker thread while running; control thread only while parked** (reconfiguration): `pool`,
///   `fillTarget`, `sockets`, `activeSlots`/`activeCount`, `ports`, `bridges`, `tapPorts`/
///   `tapPortCount`, `pollFDs`/`pollCount`, the tunnel tables (`tunnelPortStates`, `tunnelPorts`,
///   `tunnelUDPPorts`, `localRLOCs`, `underlayEndpoints`, `nextHops`), `tunnelResolverFD`, and
///   `captureRings` with the ports' capture masks (the rings' records: see `CaptureRing`).
///   The flow tables themselves (`CompiledFlowTable`) are immutable once published.
/// - **Worker thread only** (scratch of the packet path): `tapSkipRounds`, `touched`/
///   `touchedCount`, `now`, `normalMemo`, `cache`, `key`, `burst`, `outer`, `ipIdentification`,
///   `reassembler`/`reassemblyClock`, `icmpTokens`/`icmpTokenSecond`,
///   `roundSystemCallCycles`, `lastOutstanding`, `stalledWaits`, `pendingCaptures`. Per-packet metadata (tunnel
///   fields, encapsulation depth) is in no field: it travels with the packet (`PacketContext`).
/// - **Counters** (`counters`, `ruleCounters`, `tunnelCounters`, `cycles`): written only by the
///   worker thread, with relaxed atomic adds; read by any thread with relaxed loads. The control
///   thread zeroes a port's counters (parked) and rule counter slots no published table uses.
/// - **Atomics**: `state` (the handshake) and `threadID`.
/// - **Worker → resolver**: `tunnelRequests`, a single-producer single-consumer ring.
/// - **Worker → XDP flow cache installer**: `flowCacheRequests` (same kind of ring);
///   `flowCacheInstalling` is set by the datapath before the thread starts.
/// - **XDP flow cache installer → worker**: `flowCacheForgets` (same kind of ring, the installer
///   producing), drained by the worker once per round.
/// - **Control thread only**: `thread`, `pinnedCPU`.
// @unchecked: the compiler cannot see the handover above (raw memory passed between the worker
// and control threads by the park handshake's acquire/release).
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
    let tapPorts: UnsafeMutablePointer<PortSlot>
    var tapPortCount = 0
    /// Busy rounds left before the taps are read again (see pollOnce).
    var tapSkipRounds = 0
    static let tapIdleSkip = 8
    let touched: UnsafeMutablePointer<PortSlot>
    var touchedCount = 0
    let pollFDs: UnsafeMutablePointer<pollfd>
    var pollCount = 0
    /// Coarse monotonic seconds, refreshed once per round (MAC aging, rule idle times).
    var now: UInt64 = 0
    /// See NormalMemo; reset at the start of every rx burst.
    var normalMemo = NormalMemo()
    package internal(set) var cache = ExactMatchCache()
    let ruleCounters: UnsafeMutablePointer<RuleCounterBlock>
    /// A flow key to look up outside a burst (see `constantRule`).
    let key: UnsafeMutablePointer<FlowKey>
    /// This worker's cycle accounting (see `WorkerCycles`), and the system-call cycles of the
    /// current round.
    let cycles: UnsafeMutablePointer<WorkerCycles>
    var roundSystemCallCycles: UInt64 = 0
    /// The frames being classified together (see Worker+Forwarding.swift).
    let burst = ClassifyBurst()

    // Tunnels (see Worker+Tunnel.swift).
    static let maxLocalRLOCs = 64
    let tunnelPortStates: UnsafeMutablePointer<TunnelPortState>
    let tunnelCounters: UnsafeMutablePointer<TunnelCounterBlock>
    let tunnelPorts: UnsafeMutablePointer<PortSlot>
    var tunnelPortCount = 0
    let tunnelUDPPorts: UnsafeMutablePointer<UInt16>
    var tunnelUDPPortCount = 0
    let localRLOCs: UnsafeMutablePointer<IPAddress>
    var localRLOCCount = 0
    /// Where the underlay is (see UnderlayEndpoint); at most `maxLocalRLOCs`.
    let underlayEndpoints: UnsafeMutablePointer<UnderlayEndpoint>
    var underlayEndpointCount = 0
    let nextHops: TunnelNextHopTable
    /// `nextHops.entries`, kept beside it so the packet path reads a plain pointer field, not the
    /// noncopyable table.
    let nextHopEntries: UnsafeMutablePointer<TunnelNextHop>
    let tunnelRequests = TunnelRequestRing()
    /// Classifier misses of device frames for the XDP flow cache's installer (when it runs).
    let flowCacheRequests = FlowCacheKeyRing()
    /// Hand-overs the installer lost or refused for a reason that may not recur: keys for the
    /// exact-match cache to forget, so their flows miss and ask again (Worker+FlowCacheInstall.swift).
    let flowCacheForgets = FlowCacheKeyRing()
    var flowCacheInstalling = false
    /// remote_ip=map: the published map-cache, this worker's resolutions and its miss queue
    /// (WorkerMapCache.swift; ownership as the tunnel tables, listed there).
    let mapCache: WorkerMapCache
    /// `mapCache.resolutions`, `.keyTags` and `.burstSets`, kept beside it so that the hit path
    /// reads plain pointer fields of the worker (as `nextHopEntries`).
    let mapResolutions: UnsafeMutablePointer<MapResolution>
    let mapKeyTags: UnsafePointer<UInt64>
    let mapBurstSets: UnsafePointer<Int32>
    /// The set hint of the frame being acted on (its burst slot's, set by `classifyAndApply`'s
    /// loops on a worker with `remote_ip=map` ports, stale elsewhere): where the map-cache hit
    /// path looks first (Worker+MapCache.swift). Always a set, so a stale one only names another
    /// frame's.
    var mapFrameSet: UnsafeMutablePointer<MapResolution>
    /// Written to ask the resolver for a next hop (set by the datapath; -1: none).
    var tunnelResolverFD: Int32 = -1
    let outer: UnsafeMutablePointer<LISP.OuterHeaders>
    var ipIdentification: UInt16 = 0
    /// nil in a live worker; a trace-mode worker's room for the frames its tunnel code hands back
    /// to the trace (see Worker+Trace.swift). A pointer: checking it costs no reference counting.
    var traceHandoffs: UnsafeMutablePointer<TraceHandoffs>? = nil

    // Port capture (see Worker+Capture.swift): rings of the running captures, owned by their
    // `PortCapture`; capture slots holding a frame written but not yet published.
    let captureRings: UnsafeMutablePointer<Unmanaged<CaptureRing>?>
    var pendingCaptures: UInt8 = 0

    /// Outer IPv4 fragments of LISP waiting for the rest (Worker+Reassembly.swift), and the second
    /// its timeouts were last checked.
    let reassembler: FragmentReassembler
    var reassemblyClock: UInt64 = 0
    /// ICMP "too big" answers left this second, and the second (Worker+PathMTU.swift).
    var icmpTokens: UInt32 = 0
    var icmpTokenSecond: UInt64 = 0

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
        let table = TunnelNextHopTable()
        nextHopEntries = table.entries
        nextHops = table
        let cache = WorkerMapCache()
        mapCache = cache
        mapResolutions = cache.resolutions
        mapKeyTags = UnsafePointer(cache.keyTags)
        mapBurstSets = UnsafePointer(cache.burstSets)
        mapFrameSet = cache.resolutions
        outer = .allocate(capacity: 1)
        outer.initialize(to: LISP.OuterHeaders())
        captureRings = .allocate(capacity: Self.maxCaptures)
        captureRings.initialize(repeating: nil, count: Self.maxCaptures)
        reassembler = FragmentReassembler(limits: Self.reassemblyLimits(frameSize: frameSize))
        now = Self.monotonicSeconds()
        rebuildPollSet()
    }

    // `cache`, `nextHops` (noncopyable owners) and `burst` free their own memory; `pool` is freed below.
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
        captureRings.deallocate()
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

    /// The worker thread: rounds (`accountedPoll`) until stopped, parking when asked between them
    /// and sleeping in poll() after 64 rounds without input.
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
}
