import CXDP
import Glibc
import VSwiftClassifier
import VSwiftDatapath
import VSwiftPacket

/// Runs a real worker's packet path — receive, parse, classify, act, transmit, recycle — against
/// rings in process memory, with this harness playing the kernel: it moves fill-ring frames to the
/// rx ring of port 1 (copying a template packet in, as copy mode does) and takes port 2's tx ring
/// to its completion ring. No syscall, no device: the ceiling vswift would reach on a zero-copy NIC,
/// and a place to prove the path allocates nothing.
public final class PipelineHarness {
    public struct Result: Sendable {
        public var packets: Int
        public var transmitted: Int
        public var seconds: Double
        /// CPU time of the benchmark thread: unlike `seconds`, not inflated while other processes
        /// hold the CPU (the development VM is shared), though their cache pollution still shows.
        public var cpuSeconds: Double
        public var nanosecondsPerPacket: Double { seconds * 1e9 / Double(max(packets, 1)) }
        public var cpuNanosecondsPerPacket: Double { cpuSeconds * 1e9 / Double(max(packets, 1)) }
        public var mpps: Double { Double(packets) / seconds / 1e6 }
    }

    /// Package-visible for the XDP flow cache's hand-over tests (its ring and table, with @testable).
    package let worker: Worker
    private let rxSlot: Int
    private let txSlot: Int
    private let templates: UnsafeMutableRawPointer
    /// Bytes between templates (the longest one's length), and each one's own length.
    private let templateStride: Int
    private let templateLengths: UnsafeMutablePointer<Int>
    private let templateCount: Int
    private var nextTemplate = 0
    /// Bridge 0's MAC table (kept for `addLISPPort`, which changes the bridge's members).
    let macTable = MACLearningTable()
    /// What the harness keeps alive for the worker, which holds them unretained: every flow table
    /// it was given, the map-cache's RLOC sets (PipelineHarness+MapCache.swift).
    var keptAlive: [AnyObject] = []
    public private(set) var transmitted = 0
    private var lastTransmitted = xdp_desc()

    /// The bytes of the last frame sent on the output port (valid until the next run).
    public var lastTransmittedFrame: [UInt8] {
        Array(UnsafeRawBufferPointer(start: worker.base + Int(lastTransmitted.addr), count: Int(lastTransmitted.len)))
    }

    /// The harness's two devices: `input` is where the "NIC" delivers the packets (port 1, or the
    /// underlay when decapsulating), `output` the other one (port 2, or the underlay when
    /// encapsulating).
    public enum Device: Sendable, Equatable {
        case input
        case output
    }

    /// A frame as it left the switch: the device it was sent on and its bytes.
    public struct SentFrame: Sendable, Equatable, CustomStringConvertible {
        public var device: Device
        public var bytes: [UInt8]

        public init(_ device: Device, _ bytes: [UInt8]) {
            self.device = device
            self.bytes = bytes
        }

        public var description: String { "\(device) \(bytes.count) bytes" }
    }

    /// With `recordSentFrames` on, every frame sent on either device from then on, in the order
    /// the switch sent them, for tests that check which frame went where with which headers. Off
    /// by default: recording copies each frame, and the benchmark must allocate nothing per packet.
    public var recordSentFrames = false
    public private(set) var sentFrames: [SentFrame] = []

    /// Forgets the frames recorded so far.
    public func clearSentFrames() { sentFrames.removeAll() }

    /// Where the recorded frames first differ from `expected` (the count, or the index and both
    /// frames in hex), or nil when they are the same: a readable failure for `#expect(… == nil)`.
    public func sentFramesDifference(from expected: [SentFrame]) -> String? {
        func hex(_ frame: SentFrame) -> String {
            "\(frame.device) " + frame.bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        }
        if let i = (0..<min(sentFrames.count, expected.count)).first(where: { sentFrames[$0] != expected[$0] }) {
            return "frame \(i) of \(sentFrames.count) sent:\n  \(hex(sentFrames[i]))\nexpected:\n  \(hex(expected[i]))"
        }
        return sentFrames.count == expected.count ? nil : "\(sentFrames.count) frames sent, \(expected.count) expected"
    }

    /// Decapsulation over IPv4: re-publishes the tunnel's next hop as if the route to the remote
    /// RLOC left from `localRLOC` by `egressPort` (or by bridge `egressBridge`), so LISP arriving on
    /// port 1's underlay slot is off the underlay or to another address (trust-boundary tests).
    public func moveUnderlay(localRLOC: IPAddress, egressPort: UInt16, egressBridge: Int32 = -1) {
        var hop = TunnelNextHop(remote: Self.remoteRLOC, local: IPAddress(), udpPort: LISP.udpPort, status: .resolved)
        hop.egressPort = PortSlot(rawValue: egressPort)
        hop.egressBridge = BridgeSlot(rawValue: egressBridge)
        hop.localRLOC = localRLOC
        hop.parameters = LISP.EncapsulationParameters(
            ethernetDestination: Self.nextHopMAC, ethernetSource: Self.deviceMAC, source: localRLOC, destination: Self.remoteRLOC)
        worker.setTunnelRouting(localRLOCs: [Self.localRLOC, localRLOC], nextHops: [hop])
    }

    /// Counters of the LISP port (tunnel scenarios).
    public var tunnelStatistics: TunnelStatistics { worker.tunnelStatistics(2) }

    /// LISP in the pipeline: encapsulate what the flows output to port 2, or decapsulate what
    /// arrives (from `remoteRLOC` to `localRLOC`) and send it through the flows.
    public enum Tunnel: Sendable {
        case none
        case encapsulate
        case decapsulate
    }

    /// The encapsulating underlay: IPv4, or IPv6 with the UDP checksum computed by the worker or
    /// requested through AF_XDP TX metadata (this harness then completes it, as a device would).
    public enum Underlay: Sendable {
        case ipv4
        case ipv6(checksumOffload: Bool)
    }

    public static let localRLOC = IPAddress(ipv4: 0xc000_0201)    // 192.0.2.1
    public static let remoteRLOC = IPAddress(ipv4: 0xc000_0202)   // 192.0.2.2
    public static let localRLOC6 = IPAddress("2001:db8::1")!
    public static let remoteRLOC6 = IPAddress("2001:db8::2")!
    /// Frames that reached the output port with a TX metadata checksum request, which this harness
    /// completed.
    public private(set) var checksumsCompleted = 0
    package static let nextHopMAC: UInt64 = 0x0200_0000_0002
    package static let deviceMAC: UInt64 = 0x0200_0000_0001

    /// The outer headers this harness's tunnel uses, from `remoteRLOC` to `localRLOC` (for
    /// building decapsulation input).
    public static var encapsulationToHarness: LISP.EncapsulationParameters {
        LISP.EncapsulationParameters(
            ethernetDestination: deviceMAC, ethernetSource: nextHopMAC, source: remoteRLOC, destination: localRLOC)
    }

    /// `packets` are the frames the "NIC" delivers on port 1, round robin (one per flow; any lengths).
    /// Ports: 1 → slot 0 (input), 2 → slot 1 (output), LOCAL (65534) → slot 2 (a sink).
    /// With a tunnel, port 2 is a LISP port (slot 2) and the underlay device is slot 1 (encapsulate:
    /// the outer frames leave there) or slot 0 (decapsulate: LISP arrives there; port 1 is slot 1).
    /// `underlayMTU`: the encapsulation next hop's device MTU (0: no limit). `outerFields`: the LISP
    /// port's ttl and tos options.
    public init(packets: [[UInt8]], rules: [DatapathRule]?, batch: Int = 64, tunnel: Tunnel = .none,
                underlay: Underlay = .ipv4, underlayMTU: UInt32 = 0,
                outerFields: LISP.OuterFields = LISP.OuterFields()) throws(DatapathError) {
        precondition(!packets.isEmpty && packets.allSatisfy { $0.count <= 4096 - 256 })
        let ringSize: UInt32 = 4096
        var rings = RingSizes()
        rings.rx = ringSize
        rings.tx = ringSize
        rings.fill = ringSize
        rings.completion = ringSize
        worker = try Worker(index: 0, frameCount: 8192, frameSize: 4096, rings: rings, rxBatch: batch)
        let length = packets.map(\.count).max()!
        let memory = UnsafeMutableRawPointer.allocate(byteCount: packets.count * length, alignment: 64)
        templateLengths = .allocate(capacity: packets.count)
        for (i, p) in packets.enumerated() {
            p.withUnsafeBytes { (memory + i * length).copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            templateLengths[i] = p.count
        }
        templateStride = length
        templateCount = packets.count
        templates = memory
        let table = macTable
        rxSlot = worker.attachInMemorySocket(port: 0, size: ringSize)
        txSlot = worker.attachInMemorySocket(port: 1, size: ringSize)
        var slots: [OpenFlowPortNumber: PortSlot] = [1: 0, 2: 1]
        switch tunnel {
        case .none:
            worker.setPort(0, kind: .xsk, bridge: 0, txSlot: Int32(rxSlot), tapFD: -1)
            worker.setPort(1, kind: .xsk, bridge: 0, txSlot: Int32(txSlot), tapFD: -1)
            worker.setPortNumber(0, ofport: 1)
            worker.setPortNumber(1, ofport: 2)
            worker.setBridge(0, table: table, members: [0, 1])
        case .encapsulate, .decapsulate:
            let vm: PortSlot = tunnel == .encapsulate ? 0 : 1
            let underlayPort = PortSlot(rawValue: 1 - vm.rawValue)
            worker.setPort(vm, kind: .xsk, bridge: 0, txSlot: Int32(vm == 0 ? rxSlot : txSlot), tapFD: -1)
            worker.setPort(underlayPort, kind: .xsk, bridge: -1, txSlot: Int32(underlayPort == 0 ? rxSlot : txSlot), tapFD: -1)
            worker.setPortNumber(vm, ofport: 1)
            var (local, remote, offload) = (Self.localRLOC, Self.remoteRLOC, false)
            if case .ipv6(let checksumOffload) = underlay {
                (local, remote, offload) = (Self.localRLOC6, Self.remoteRLOC6, checksumOffload)
            }
            addLISPPort(2, ofport: 2, options: LISPPortOptions(remote: .address(remote), outerFields: outerFields), members: [vm, 2])
            var hop = TunnelNextHop(remote: remote, local: IPAddress(), udpPort: LISP.udpPort, status: .resolved)
            hop.egressPort = underlayPort
            hop.mtu = underlayMTU
            hop.localRLOC = local
            hop.parameters = LISP.EncapsulationParameters(
                ethernetDestination: Self.nextHopMAC, ethernetSource: Self.deviceMAC,
                source: local, destination: remote, offloadUDPChecksum: offload)
            worker.setTunnelRouting(localRLOCs: [local], nextHops: [hop])
            slots = [1: vm, 2: 2]
        }
        if let rules { try setFlowTable(rules, slots: slots) }
        // NORMAL needs the destination learned on port 2: tell it once, as a reply would.
        if let first = packets.first, first.count >= 12 {
            let destination = first.withUnsafeBytes { Ethernet.destination($0.baseAddress!) }
            table.learn(destination, port: 1, now: Worker.monotonicSeconds())
        }
    }

    /// Makes slot `slot` a LISP port of bridge 0 with `options`, OpenFlow port `ofport`, and
    /// `members` (which include it) bridge 0's ports. Its next hops are the caller's to set.
    func addLISPPort(_ slot: PortSlot, ofport: OpenFlowPortNumber, options: LISPPortOptions, members: [PortSlot]) {
        worker.setTunnelPort(slot, bridge: 0, state: TunnelPortState(options))
        worker.setPortNumber(slot, ofport: ofport)
        worker.setBridge(0, table: macTable, members: members)
    }

    /// Gives bridge 0 the flow table of `rules`, whose OpenFlow port numbers are slots `slots`
    /// (none: output to it is dropped). The table replaced stays alive with the harness.
    func setFlowTable(_ rules: [DatapathRule], slots: [OpenFlowPortNumber: PortSlot]) throws(DatapathError) {
        let table = try CompiledFlowTable(rules: rules, portSlot: { slots[$0] })
        keptAlive.append(table)
        worker.setFlowTable(0, table)
    }

    deinit {
        templates.deallocate()
        templateLengths.deallocate()
    }

    /// Plays the kernel for `count` packets and lets the worker process them; returns the timing.
    public func run(packets count: Int) -> Result {
        var delivered = 0
        let start = Self.now()
        let cpuStart = Self.threadCPUTime()
        while delivered < count {
            delivered += deliver(max: min(count - delivered, Int(worker.rxBatch)))
            _ = worker.accountedPoll()
            completeTransmissions()
        }
        let seconds = Self.now() - start
        let cpuSeconds = Self.threadCPUTime() - cpuStart
        return Result(packets: delivered, transmitted: transmitted, seconds: seconds, cpuSeconds: cpuSeconds)
    }

    /// The worker's frame census (all frames must be accounted for between runs).
    public func accounting() -> FrameAccounting { worker.accounting() }

    /// Statistics of a rule counter slot.
    public func ruleStatistics(counterSlot: Int) -> RuleStatistics {
        let c = worker.ruleCounters(counterSlot)
        return RuleStatistics(packets: c.packets, bytes: c.bytes, lastUsed: c.lastUsed)
    }

    /// The worker's cycle accounting over every run so far.
    public var cycles: WorkerCycles { worker.cycleAccounting() }

    /// Frames (and copies) dropped on the way from port 1, the input port.
    public var inputDropped: UInt64 { worker.counters[0].rxDropped }  // port 1 is slot 0
    public static var maxOutputsPerPacket: Int { Worker.maxOutputsPerPacket }

    public var cacheHits: UInt64 { worker.cache.hits }
    public var cacheMisses: UInt64 { worker.cache.misses }

    // Port capture, as a running `vswiftctl capture` has it (Worker+Capture.swift).
    private var captureRings: [CaptureRing] = []

    /// Copies the frames port `port` (a slot, see `init`) receives and/or sends into a new ring in
    /// capture slot `captureSlot`.
    package func capture(port: UInt16, directions: Set<CaptureDirection>, snapLength: Int = 4096, capacity: Int = 1024,
                         captureSlot: Int = 0) -> CaptureRing {
        let ring = CaptureRing(capacity: capacity, snapLength: snapLength)
        captureRings.append(ring)
        worker.setCapture(captureSlot, ring: ring, port: PortSlot(rawValue: port), directions: directions)
        return ring
    }

    package func stopCapture(port: UInt16, captureSlot: Int = 0) {
        worker.setCapture(captureSlot, ring: nil, port: PortSlot(rawValue: port), directions: [])
    }

    /// Frames received and sent on port slot `port`, by its counters.
    package func packetCounts(port: UInt16) -> (rx: UInt64, tx: UInt64) {
        worker.packetCounts(PortSlot(rawValue: port))
    }

    /// Fill ring → rx ring, with a packet copied into each frame (copy mode's kernel work).
    private func deliver(max n: Int) -> Int {
        let socket = worker.sockets + rxSlot
        let fill = socket.pointee.fill
        let fillProducer = vs_acquire_load_u32(fill.producer)
        var fillConsumer = fill.consumer.pointee
        let rx = socket.pointee.rx
        var rxProducer = rx.producer.pointee
        let rxConsumer = vs_acquire_load_u32(rx.consumer)
        var moved = 0
        while moved < n && fillConsumer != fillProducer && rxProducer &- rxConsumer < rx.size {
            let address = fill.ring.load(fromByteOffset: Int(fillConsumer & fill.mask) * 8, as: UInt64.self) &+ 256
            let templateLength = templateLengths[nextTemplate]
            memcpy(worker.base + Int(address), templates + nextTemplate * templateStride, templateLength)
            nextTemplate = nextTemplate + 1 == templateCount ? 0 : nextTemplate + 1
            let desc = rx.ring.assumingMemoryBound(to: xdp_desc.self) + Int(rxProducer & rx.mask)
            desc.pointee = xdp_desc(addr: address, len: UInt32(templateLength), options: 0)
            fillConsumer &+= 1
            rxProducer &+= 1
            moved += 1
        }
        vs_release_store_u32(fill.consumer, fillConsumer)
        vs_release_store_u32(rx.producer, rxProducer)
        return moved
    }

    /// Tx ring → completion ring on every port.
    private func completeTransmissions() {
        for slot in [rxSlot, txSlot] {
            let socket = worker.sockets + slot
            let tx = socket.pointee.tx
            let comp = socket.pointee.completion
            let txProducer = vs_acquire_load_u32(tx.producer)
            var txConsumer = tx.consumer.pointee
            var compProducer = comp.producer.pointee
            while txConsumer != txProducer {
                let desc = (tx.ring.assumingMemoryBound(to: xdp_desc.self) + Int(txConsumer & tx.mask)).pointee
                comp.ring.storeBytes(of: desc.addr, toByteOffset: Int(compProducer & comp.mask) * 8, as: UInt64.self)
                txConsumer &+= 1
                compProducer &+= 1
                if slot == txSlot {
                    if desc.options & UInt32(VS_XDP_TX_METADATA) != 0 { completeChecksum(desc) }
                    transmitted += 1
                    lastTransmitted = desc
                }
                if recordSentFrames {
                    let bytes = Array(UnsafeRawBufferPointer(start: worker.base + Int(desc.addr), count: Int(desc.len)))
                    sentFrames.append(SentFrame(slot == txSlot ? .output : .input, bytes))
                }
            }
            vs_release_store_u32(tx.consumer, txConsumer)
            vs_release_store_u32(comp.producer, compProducer)
        }
    }

    /// What a device does with a TX metadata checksum request (CHECKSUM_PARTIAL semantics): sum
    /// from csum_start to the end of the frame — the field holds the pseudo-header sum — and store
    /// the complement (0xffff for 0, as UDP needs).
    private func completeChecksum(_ desc: xdp_desc) {
        let frame = worker.base + Int(desc.addr)
        let metadata = (frame - UmemArea.txMetadataRoom).assumingMemoryBound(to: vs_xsk_tx_metadata.self).pointee
        guard metadata.flags & UInt64(VS_XDP_TXMD_FLAGS_CHECKSUM) != 0 else { return }
        let start = Int(metadata.request.csum_start), field = start + Int(metadata.request.csum_offset)
        guard field + 2 <= Int(desc.len) else { return }
        let checksum = ~Checksum.sum(frame + start, length: Int(desc.len) - start)
        frame.storeBytes(of: (checksum == 0 ? 0xffff : checksum).bigEndian, toByteOffset: field, as: UInt16.self)
        checksumsCompleted += 1
    }

    static func threadCPUTime() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
