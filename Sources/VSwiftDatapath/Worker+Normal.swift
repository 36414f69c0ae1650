import CSupport
import CXDP
import Glibc
import VSwiftClassifier
import VSwiftPacket

/// NORMAL's decision for the previous frame of the current rx burst: a run of frames with the
/// same addresses (the usual burst) learns and looks up once. Valid only within one burst (the
/// worker clears it when a burst starts): the frames in between were this one alone, whose own
/// learning is already in the table, so the answer is the same; another worker's concurrent
/// change is seen from the next burst on, the same race as two lookups of the shared table.
struct NormalMemo {
    /// The frame's first 12 bytes (destination and source address) as two plain loads.
    var addresses: (UInt64, UInt32) = (0, 0)
    var inPort = PortSlot(rawValue: 0)
    /// A bridge index, -1 for none.
    var bridge = -1
    var out = MACLearningTable.noPort

    @inline(__always)
    static func addresses(of frame: UnsafeRawPointer) -> (UInt64, UInt32) {
        (frame.loadUnaligned(as: UInt64.self), frame.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
    }

    @inline(__always)
    func matches(_ addresses: (UInt64, UInt32), inPort: PortSlot, bridge: Int) -> Bool {
        self.bridge == bridge && self.addresses == addresses && self.inPort == inPort
    }
}

/// The NORMAL action (a MAC-learning L2 switch over the bridge's shared `MACLearningTable`) and
/// flooding. Worker thread only.
extension Worker {
    /// NORMAL: learn the source, send to the learned port of the destination, else flood.
    @inline(__always)
    func normal(address: UInt64, length: UInt32, inPort: PortSlot, bridge: Int, context: PacketContext) {
        let frame = base + Int(address)
        guard let table = bridges[bridge].macTable else {
            pool.release(address)
            return
        }
        let addresses = NormalMemo.addresses(of: frame)
        let out: PortSlot
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
            if out != inPort { output(port: out, address: address, length: length, context: context, inPort: inPort) } else { pool.release(address) }
            return
        }
        flood(bridge: bridge, address: address, length: length, inPort: inPort, context: context)
    }

    /// Sends to every port of the bridge but the input: copies for all but the last, which gets the original.
    @inline(__always)
    func flood(bridge: Int, address: UInt64, length: UInt32, inPort: PortSlot, context: PacketContext) {
        let members = bridges[bridge]
        let offset = address & (UInt64(frameSize) - 1)
        var previous = MACLearningTable.noPort
        for i in 0..<members.portCount {
            let port = members.ports[i]
            if port == inPort { continue }
            if previous != MACLearningTable.noPort {
                if let copy = pool.allocate() {
                    memcpy(base + Int(copy &+ offset), base + Int(address), Int(length))
                    output(port: previous, address: copy &+ offset, length: length, context: context, inPort: inPort)
                } else {
                    vs_add_relaxed_u64(&counters[previous.index].txDropped, 1)
                }
            }
            previous = port
        }
        if previous != MACLearningTable.noPort {
            output(port: previous, address: address, length: length, context: context, inPort: inPort)
        } else {
            pool.release(address)
        }
    }

    /// The `count` frames at rx index `first` of socket `slot` through NORMAL, frame by frame: for
    /// a plain learning bridge (`counting` nil), or a table that gives every frame rule `rule`,
    /// whose only action is NORMAL (a new bridge's table), counted once on that rule. A frame that
    /// may be LISP for a local RLOC goes through `forward` (decapsulation). Returns the bytes received.
    @inline(__always)
    func normalBurst(_ socket: UnsafeMutablePointer<XSKSocket>, slot: Int, first: UInt32, count: Int, inPort: PortSlot,
                     bridge: BridgeSlot, counting table: CompiledFlowTable?, rule: RuleIndex) -> UInt64 {
        var bytes: UInt64 = 0
        var run = RuleRun(rule: rule)
        // Received frames: no tunnel metadata, no encapsulation yet; NORMAL sets none.
        let context = PacketContext()
        // While frames repeat the previous one's addresses (the usual burst), they go to the port
        // NORMAL chose for it (`target`, never a tunnel) without the call into `normal` (which
        // does not inline: it can reach itself through tunnels), the memo and the port's staging
        // count held in registers. Both are written back before anything else may stage.
        var memo = normalMemo
        var target: UnsafeMutablePointer<WorkerPort>? = nil
        var staged = 0
        for i in 0..<count {
            guard let desc = takeReceived(socket, first: first, i, count: count, slot: slot, inPort: inPort, bytes: &bytes) else { continue }
            if tunnelPortCount > 0,
               LISP.mayBeLISP(base + Int(desc.addr), length: Int(desc.len), udpPorts: tunnelUDPPorts, count: tunnelUDPPortCount) {
                if let port = target { port.pointee.stagedCount = Int32(staged); target = nil }
                forward(address: desc.addr, length: desc.len, inPort: inPort, bridge: bridge)
                continue
            }
            run.packets &+= 1
            run.bytes &+= UInt64(desc.len)
            if let port = target, staged < DatapathLimits.stageCapacity,
               memo.addresses == NormalMemo.addresses(of: base + Int(desc.addr)) {
                port.pointee.staged[staged] = xdp_desc(addr: desc.addr, len: desc.len, options: 0)
                staged &+= 1
                continue
            }
            if let port = target { port.pointee.stagedCount = Int32(staged); target = nil }
            normal(address: desc.addr, length: desc.len, inPort: inPort, bridge: bridge.knownIndex, context: context)
            memo = normalMemo
            if memo.bridge == bridge.knownIndex, memo.inPort == inPort, memo.out != MACLearningTable.noPort, memo.out != inPort,
               ports[memo.out.index].kind != .lisp, ports[memo.out.index].isTouched {
                target = ports + memo.out.index
                staged = Int(ports[memo.out.index].stagedCount)
            }
        }
        if let port = target { port.pointee.stagedCount = Int32(staged) }
        if let table { addToCounters(run, table) }
        return bytes
    }
}
