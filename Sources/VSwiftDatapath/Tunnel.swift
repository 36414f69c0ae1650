import Glibc
import Synchronization
import VSwiftClassifier
import VSwiftPacket

/// A LISP tunnel port's settings, read from OVS-style options:
///
///     options:remote_ip=192.168.1.252   (or IPv6, or "flow": take tun_dst from the flow, or "map":
///                                        the map-cache's RLOC for the inner destination)
///     options:local_ip=192.168.1.249    (optional: otherwise the route's preferred source)
///     options:key=5                     (instance id, or "flow": tun_id; default 0, as OVS)
///     options:dst_port=4341             (default 4341)
///     options:ttl=inherit               (outer TTL / hop limit: a number 1..255, or "inherit" from
///                                        the inner header, the default: RFC 9300 §5.3)
///     options:tos=inherit               (outer DSCP: a TOS byte 0..252 with ECN bits 0, or "inherit",
///                                        the default; ECN is always inherited, RFC 6040 §4.1)
///
/// As in OVS, `key` is both the instance id sent and the one accepted: a port with a fixed key
/// drops packets that carry another one, a port with `key=flow` accepts any and reports it in tun_id.
public struct LISPPortOptions: Sendable, Equatable {
    public enum Remote: Sendable, Equatable {
        case address(IPAddress)
        case flow
        /// The LISP mapping system's: each inner destination's RLOC from the map-cache, in the
        /// port's instance id (`key`, which must then be a number). See Worker+MapCache.swift.
        case map
    }
    public enum Key: Sendable, Equatable {
        case id(UInt32)
        case flow
    }

    public var remote: Remote
    public var local: IPAddress?
    public var key: Key = .id(0)
    public var udpPort: UInt16 = LISP.udpPort
    /// Outer TTL and DSCP on encapsulation (`ttl`, `tos`; both inherited by default).
    public var outerFields = LISP.OuterFields()

    public init(remote: Remote, local: IPAddress? = nil, key: Key = .id(0), udpPort: UInt16 = LISP.udpPort,
                outerFields: LISP.OuterFields = LISP.OuterFields()) {
        self.remote = remote
        self.local = local
        self.key = key
        self.udpPort = udpPort
        self.outerFields = outerFields
    }

    public static let knownOptions: Set<String> = ["remote_ip", "local_ip", "key", "dst_port", "ttl", "tos"]

    /// Reads and checks the options; every problem is named in the error.
    public init(options: [String: String]) throws(DatapathError) {
        for name in options.keys.sorted() where !Self.knownOptions.contains(name) {
            throw .unsupported("LISP ports take no option \"\(name)\" (known: dst_port, key, local_ip, remote_ip, tos, ttl)")
        }
        guard let remoteText = options["remote_ip"] else {
            throw .unsupported("a LISP port needs options:remote_ip (an IPv4 or IPv6 address, \"flow\" or \"map\")")
        }
        if remoteText == "flow" {
            remote = .flow
        } else if remoteText == "map" {
            remote = .map
        } else {
            guard let address = IPAddress(remoteText), !address.isUnspecified, !address.isMulticast else {
                throw .unsupported("options:remote_ip=\"\(remoteText)\" is not a unicast IPv4 or IPv6 address (or \"flow\" or \"map\")")
            }
            remote = .address(address)
        }
        if let localText = options["local_ip"] {
            guard let address = IPAddress(localText), !address.isUnspecified, !address.isMulticast else {
                throw .unsupported("options:local_ip=\"\(localText)\" is not a unicast IPv4 or IPv6 address")
            }
            if case .address(let r) = remote, r.isIPv4 != address.isIPv4 {
                throw .unsupported("options:local_ip and options:remote_ip are of different address families")
            }
            local = address
        }
        if let keyText = options["key"] {
            if keyText == "flow" {
                key = .flow
            } else {
                guard let value = Self.parseNumber(keyText), value < 1 << 24 else {
                    throw .unsupported("options:key=\"\(keyText)\" is not an instance id (0 to 16777215, or \"flow\"): LISP carries 24 bits")
                }
                key = .id(UInt32(value))
            }
        }
        if let portText = options["dst_port"] {
            guard let value = Self.parseNumber(portText), value > 0, value <= 65535 else {
                throw .unsupported("options:dst_port=\"\(portText)\" is not a UDP port (1 to 65535)")
            }
            udpPort = UInt16(value)
        }
        if remote == .map && key == .flow {
            // The map-cache is looked up in one instance: the port's.
            throw .unsupported("options:remote_ip=map needs a fixed options:key (the instance id to look EIDs up in), not \"flow\"")
        }
        outerFields = try Self.parseOuterFields(ttl: options["ttl"], tos: options["tos"])
    }

    /// `ttl` and `tos` as OVS spells them: a number or "inherit" (the default for both here).
    private static func parseOuterFields(ttl ttlText: String?, tos tosText: String?) throws(DatapathError) -> LISP.OuterFields {
        var ttl: UInt8?
        var tos: UInt8?
        if let ttlText, ttlText != "inherit" {
            guard let value = parseNumber(ttlText), value >= 1, value <= 255 else {
                throw .unsupported("options:ttl=\"\(ttlText)\" is not a TTL (1 to 255, or \"inherit\")")
            }
            ttl = UInt8(value)
        }
        if let tosText, tosText != "inherit" {
            // As OVS: the ECN bits must be 0, ECN is always inherited from the inner header.
            guard let value = parseNumber(tosText), value <= 255, value & 0x03 == 0 else {
                throw .unsupported("options:tos=\"\(tosText)\" is not a TOS (0 to 252 with the two ECN bits 0: ECN is always inherited; or \"inherit\")")
            }
            tos = UInt8(value)
        }
        return LISP.OuterFields(ttl: ttl, tos: tos)
    }

    private static func parseNumber(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        return UInt64(text)
    }
}

extension IPAddress {
    /// The all-zero address (::): "none" in tables keyed by address.
    package init() { self.init(high: 0, low: 0) }

    var isUnspecified: Bool { isIPv4 ? ipv4 == 0 : (high == 0 && low == 0) }
    var isMulticast: Bool { isIPv4 ? ipv4 >> 28 == 0xe : high >> 56 == 0xff }
}

/// What a LISP port has done, summed over workers (`dump-ports` prints it under the port).
public struct TunnelStatistics: Codable, Sendable, Equatable {
    public var encapsulated: UInt64 = 0
    public var decapsulated: UInt64 = 0
    /// Output frames that were not IPv4/IPv6 (LISP carries only IP).
    public var droppedNonIP: UInt64 = 0
    /// Received LISP packets with a malformed outer, LISP or inner IP header, or a bad UDP checksum.
    public var droppedBadHeader: UInt64 = 0
    /// Received from an RLOC other than the port's fixed remote_ip.
    public var droppedUnknownRLOC: UInt64 = 0
    /// Received with an instance id other than the port's key.
    public var droppedIIDMismatch: UInt64 = 0
    /// Received with an inner IPv4 total length or IPv6 payload length that is shorter than the
    /// inner header or longer than the bytes the outer UDP length carries (RFC 791, RFC 8200).
    public var droppedBadInnerLength: UInt64 = 0
    /// Received with KK ≠ 00: an encrypted payload (RFC 8061), which vswift cannot decrypt.
    public var droppedEncrypted: UInt64 = 0
    /// Received with outer ECN CE over an inner Not-ECT packet (RFC 6040 §4.2: drop).
    public var droppedCENotECT: UInt64 = 0
    /// Received with an inner TTL / hop limit of 0 once lowered to the outer one (RFC 9300 §5.3).
    public var droppedTTLExpired: UInt64 = 0
    /// LISP to a local address that did not arrive where this port's underlay is (see DESIGN.md,
    /// "Trust boundary: LISP decapsulation"): not decapsulated, but forwarded by the flow table as
    /// the ordinary frame it is. Not a drop.
    public var refusedOffUnderlay: UInt64 = 0
    /// No route to the remote RLOC, or the route leaves by a device vswift does not drive.
    public var droppedNoRoute: UInt64 = 0
    /// The next hop's MAC is not known yet (resolution was requested).
    public var droppedNoNeighbour: UInt64 = 0
    /// Encapsulated, the packet was larger than the egress device's MTU (as OVS, vswift neither
    /// fragments the outer packet nor answers with ICMP: the inner MTU must leave room for the
    /// 36 or 56 bytes of LISP/UDP/IP).
    public var droppedTooBig: UInt64 = 0
    /// ICMP answers, inner fragmentation and outer reassembly (see `PathMTUStatistics`).
    public var pathMTU = PathMTUStatistics()
    /// remote_ip=map: no map-cache entry for the inner destination, or one that says to ask again
    /// (no usable locator, negative send-map-request): dropped, and the miss queued for a
    /// Map-Request (Worker+MapCache.swift).
    public var droppedMapMiss: UInt64 = 0
    /// remote_ip=map: a negative entry says drop (drop, policy-denied, authentication-failure,
    /// no-action; RFC 9301 §5.4 ACT).
    public var droppedMapDrop: UInt64 = 0
    /// remote_ip=map: a negative entry says natively-forward; a LISP port has no native path
    /// (the packet was sent to the tunnel), so it is dropped and counted apart.
    public var droppedMapNative: UInt64 = 0
    /// remote_ip=map misses not queued for the control plane (the worker's queue was full): the
    /// packet is dropped as `droppedMapMiss` either way; not a drop of its own.
    public var mapMissesUnqueued: UInt64 = 0

    public init() {}

    public static func + (a: TunnelStatistics, b: TunnelStatistics) -> TunnelStatistics {
        var s = TunnelStatistics()
        s.encapsulated = a.encapsulated + b.encapsulated
        s.decapsulated = a.decapsulated + b.decapsulated
        s.droppedNonIP = a.droppedNonIP + b.droppedNonIP
        s.droppedBadHeader = a.droppedBadHeader + b.droppedBadHeader
        s.droppedUnknownRLOC = a.droppedUnknownRLOC + b.droppedUnknownRLOC
        s.droppedIIDMismatch = a.droppedIIDMismatch + b.droppedIIDMismatch
        s.droppedBadInnerLength = a.droppedBadInnerLength + b.droppedBadInnerLength
        s.droppedEncrypted = a.droppedEncrypted + b.droppedEncrypted
        s.droppedCENotECT = a.droppedCENotECT + b.droppedCENotECT
        s.droppedTTLExpired = a.droppedTTLExpired + b.droppedTTLExpired
        s.refusedOffUnderlay = a.refusedOffUnderlay + b.refusedOffUnderlay
        s.droppedNoRoute = a.droppedNoRoute + b.droppedNoRoute
        s.droppedNoNeighbour = a.droppedNoNeighbour + b.droppedNoNeighbour
        s.droppedTooBig = a.droppedTooBig + b.droppedTooBig
        s.pathMTU = a.pathMTU + b.pathMTU
        s.droppedMapMiss = a.droppedMapMiss + b.droppedMapMiss
        s.droppedMapDrop = a.droppedMapDrop + b.droppedMapDrop
        s.droppedMapNative = a.droppedMapNative + b.droppedMapNative
        s.mapMissesUnqueued = a.mapMissesUnqueued + b.mapMissesUnqueued
        return s
    }

    public var dropped: UInt64 {
        droppedNonIP + droppedBadHeader + droppedUnknownRLOC + droppedIIDMismatch + droppedBadInnerLength
            + droppedEncrypted + droppedCENotECT + droppedTTLExpired + droppedNoRoute + droppedNoNeighbour + droppedTooBig
            + droppedMapMiss + droppedMapDrop + droppedMapNative
    }
}

// MARK: Worker-side tunnel state (plain data, edited only while the worker is parked)

/// One worker's counters for one LISP port.
struct TunnelCounterBlock {
    var encapsulated: UInt64 = 0
    var decapsulated: UInt64 = 0
    var nonIP: UInt64 = 0
    var badHeader: UInt64 = 0
    var unknownRLOC: UInt64 = 0
    var iidMismatch: UInt64 = 0
    var badInnerLength: UInt64 = 0
    var encrypted: UInt64 = 0
    var ceNotECT: UInt64 = 0
    var ttlExpired: UInt64 = 0
    var offUnderlay: UInt64 = 0
    var noRoute: UInt64 = 0
    var noNeighbour: UInt64 = 0
    var tooBig: UInt64 = 0
    // Path MTU and outer reassembly (Worker+PathMTU.swift, Worker+Reassembly.swift).
    var pathMTU = PathMTUCounterBlock()
    // remote_ip=map (Worker+MapCache.swift).
    var mapMiss: UInt64 = 0
    var mapDrop: UInt64 = 0
    var mapNative: UInt64 = 0
    var mapMissUnqueued: UInt64 = 0
}

extension TunnelCounterBlock {
    /// Every counter under the name `dump-ports` prints it with, in its order: the one list a
    /// flow trace reports and compares (off the packet path; this allocates).
    var named: [(name: String, value: UInt64)] {
        [("encapsulated", encapsulated), ("decapsulated", decapsulated), ("non_ip", nonIP),
         ("bad_header", badHeader), ("unknown_rloc", unknownRLOC), ("iid_mismatch", iidMismatch),
         ("bad_inner_length", badInnerLength), ("encrypted", encrypted), ("ce_not_ect", ceNotECT),
         ("ttl_expired", ttlExpired), ("off_underlay", offUnderlay), ("no_route", noRoute),
         ("no_neighbour", noNeighbour), ("too_big", tooBig),
         ("map_miss", mapMiss), ("map_drop", mapDrop), ("map_native", mapNative),
         ("map_miss_unqueued", mapMissUnqueued),
         // dump-ports' lisp_mtu line.
         ("icmp_sent", pathMTU.icmpSent), ("icmp_rate_limited", pathMTU.icmpRateLimited),
         ("inner_fragmented", pathMTU.innerFragmented), ("inner_fragments", pathMTU.innerFragments),
         ("reassembled", pathMTU.reassembled), ("reassembly_timeout", pathMTU.timeouts),
         ("reassembly_overlap", pathMTU.overlaps), ("reassembly_duplicate", pathMTU.duplicates),
         ("reassembly_table_full", pathMTU.tableFull), ("reassembly_too_big", pathMTU.tooBig),
         ("reassembly_too_many_fragments", pathMTU.tooManyFragments), ("reassembly_malformed", pathMTU.malformed)]
    }
}

/// A LISP port as a worker sees it.
package struct TunnelPortState {
    var remote = IPAddress()
    var remoteIsFlow = false
    /// remote_ip=map: the remote is the map-cache's RLOC for the inner destination, in instance `key`.
    var remoteIsMap = false
    var local = IPAddress()
    var hasLocal = false
    var key: UInt32 = 0
    var keyIsFlow = false
    var udpPort: UInt16 = LISP.udpPort
    var outerFields = LISP.OuterFields()
    /// Index in the next-hop table of the fixed remote's entry; -1 for remote_ip=flow and map.
    var nextHop: Int32 = -1

    init() {}

    package init(_ options: LISPPortOptions) {
        switch options.remote {
        case .address(let a): remote = a
        case .flow: remoteIsFlow = true
        case .map: remoteIsMap = true
        }
        if let l = options.local {
            local = l
            hasLocal = true
        }
        switch options.key {
        case .id(let id): key = id
        case .flow: keyIsFlow = true
        }
        udpPort = options.udpPort
        outerFields = options.outerFields
    }
}

/// Where encapsulated frames to one remote RLOC go, and the outer headers they get.
///
/// Layout (`TunnelNextHopLayoutTests`): what encapsulation reads per packet — the outer headers'
/// parameters, the status, the egress and the MTU — is the entry's first 64 bytes, and entries
/// are 128 bytes apart in an aligned table (on a huge page, `HugePageTable`), so a packet to a next
/// hop touches one cache line of it, not two, and no page of its own.
package struct TunnelNextHop {
    package enum Status: UInt8 {
        case empty = 0
        case resolved
        case noRoute
        /// Route known, neighbour MAC not (yet): resolution requested.
        case noNeighbour
    }
    // The first cache line: what the packet path reads.
    package var parameters = LISP.EncapsulationParameters(
        ethernetDestination: 0, ethernetSource: 0, source: IPAddress(), destination: IPAddress())
    var status = Status.empty
    /// The port the frame leaves by: with `egressBridge` a bridge, the bridge's internal port, and the
    /// frame enters that bridge as if the host had sent it there; otherwise an AF_XDP port's tx ring.
    package var egressPort = PortSlot(rawValue: 0)
    package var egressBridge = BridgeSlot.unbridged
    /// The egress device's MTU: a bigger encapsulated packet is dropped and counted (0: no limit).
    package var mtu: UInt32 = 0
    // The second: the key and the decapsulation side.
    var udpPort: UInt16 = LISP.udpPort
    var remote = IPAddress()
    /// The local_ip asked for (zero: the route's preferred source).
    var local = IPAddress()
    /// The local RLOC: the address this host sends from to `remote` (local_ip, or the route's
    /// preferred source); zero until the route is known. Decapsulation accepts LISP from `remote`
    /// only when addressed here and arriving where the route leaves (the egress port, or any port of
    /// the egress bridge).
    package var localRLOC = IPAddress()
    /// Pads the stride to 128 bytes (two whole lines).
    private var padding: UInt64 = 0

    init() {}

    package init(remote: IPAddress, local: IPAddress, udpPort: UInt16, status: Status) {
        self.remote = remote
        self.local = local
        self.udpPort = udpPort
        self.status = status
    }
}

/// The next hops a worker knows, in a fixed open-addressed table keyed by (remote, local).
/// Written by the control thread while the worker is parked, except that a worker may claim an
/// empty slot for a remote it has just been asked to reach (status `.noNeighbour`, pending).
/// A key lives within `maxProbes` slots of its hash: a lookup costs at most that many probes
/// however full the table is; a key with no free slot there is not kept (its packets count as
/// no_neighbour).
/// Owns its entries (noncopyable): freed when the worker goes.
struct TunnelNextHopTable: ~Copyable {
    static let capacity = 4096
    static let maxProbes = 16
    let entries: UnsafeMutablePointer<TunnelNextHop>

    init() {
        // Aligned (each entry's first, packet-path half is one cache line) and on a huge page (the
        // next hops of many RLOCs are no TLB misses).
        entries = HugePageTable.allocate(TunnelNextHop.self, capacity: Self.capacity)
        entries.initialize(repeating: TunnelNextHop(), count: Self.capacity)
    }

    deinit { HugePageTable.free(entries) }

    @inline(__always)
    static func hash(_ remote: IPAddress, _ local: IPAddress, _ udpPort: UInt16) -> Int {
        var h = remote.high &* 0x9e37_79b9_7f4a_7c15 ^ remote.low
        h = (h ^ (h >> 29)) &* 0xbf58_476d_1ce4_e5b9 ^ local.low ^ UInt64(udpPort) << 48
        h = (h ^ (h >> 32)) &* 0x94d0_49bb_1331_11eb
        return Int(truncatingIfNeeded: h >> 40) & (capacity - 1)
    }

    /// The entry's index, or the index of the empty slot where it would go (-1: no free slot
    /// within `maxProbes` of its hash).
    @inline(__always)
    func find(_ remote: IPAddress, local: IPAddress, udpPort: UInt16) -> (index: Int, found: Bool) {
        var i = Self.hash(remote, local, udpPort)
        for _ in 0..<Self.maxProbes {
            let e = entries + i
            if e.pointee.status == .empty { return (i, false) }
            if e.pointee.remote == remote && e.pointee.local == local && e.pointee.udpPort == udpPort { return (i, true) }
            i = (i + 1) & (Self.capacity - 1)
        }
        return (-1, false)
    }

    func clear() {
        for i in 0..<Self.capacity { entries[i] = TunnelNextHop() }
    }

    func insert(_ hop: TunnelNextHop) -> Int {
        let (index, _) = find(hop.remote, local: hop.local, udpPort: hop.udpPort)
        if index >= 0 { entries[index] = hop }
        return index
    }
}

/// Where the underlay is, as a worker sees it: one (local RLOC, arrival) pair per distinct route
/// to a remote RLOC this host knows, and one per registered local RLOC (`RegisteredRLOCEndpoints`). LISP is decapsulated only when it is addressed to a local RLOC
/// and arrives on the port (`bridge` `.unbridged`) or in the bridge its route leaves by.
package struct UnderlayEndpoint: Equatable, Sendable {
    package var localRLOC = IPAddress()
    package var port = PortSlot(rawValue: 0)
    package var bridge = BridgeSlot.unbridged

    /// Does a frame received on `inPort` (in `inBridge`) arrive on this endpoint's side?
    @inline(__always)
    func admits(inPort: PortSlot, inBridge: BridgeSlot) -> Bool {
        bridge != .unbridged ? inBridge == bridge : inPort == port
    }

    /// The endpoint of a next hop whose route is known (resolved, or waiting for the neighbour).
    init?(_ hop: TunnelNextHop) {
        guard hop.status == .resolved || hop.status == .noNeighbour, !hop.localRLOC.isUnspecified else { return nil }
        localRLOC = hop.localRLOC
        port = hop.egressPort
        bridge = hop.egressBridge
    }

    /// A registered local RLOC on the device `port` (in `bridge`, or `.unbridged`): see
    /// `RegisteredRLOCEndpoints`.
    package init(localRLOC: IPAddress, port: PortSlot, bridge: BridgeSlot) {
        self.localRLOC = localRLOC
        self.port = port
        self.bridge = bridge
    }

    init() {}
}

/// What a tunnel needs a next hop for: the remote RLOC, the local_ip asked for (zero: the route's
/// preferred source) and the UDP destination port.
struct TunnelTarget: Hashable, Sendable {
    var remote: IPAddress
    var local: IPAddress
    var udpPort: UInt16
}

/// Remotes a worker needs resolved (remote_ip=flow): a single-producer (worker), single-consumer
/// (resolver) ring, so the packet path never locks or allocates to ask.
// @unchecked: the slots are raw memory handed from the one producer to the one consumer by the
// release/acquire of `head` and `tail`.
final class TunnelRequestRing: @unchecked Sendable {
    static let capacity = 64
    private let slots: UnsafeMutablePointer<TunnelTarget>
    private let head = Atomic<Int>(0)   // next to write (worker)
    private let tail = Atomic<Int>(0)   // next to read (resolver)

    init() {
        slots = .allocate(capacity: Self.capacity)
        slots.initialize(repeating: TunnelTarget(remote: IPAddress(), local: IPAddress(), udpPort: 0), count: Self.capacity)
    }

    deinit { slots.deallocate() }

    /// Worker side: false when full (the request is retried by a later packet).
    @inline(__always)
    func push(_ target: TunnelTarget) -> Bool {
        let h = head.load(ordering: .relaxed)
        guard h &- tail.load(ordering: .acquiring) < Self.capacity else { return false }
        slots[h & (Self.capacity - 1)] = target
        head.store(h &+ 1, ordering: .releasing)
        return true
    }

    /// Resolver side.
    func drain() -> [TunnelTarget] {
        var out: [TunnelTarget] = []
        var t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        while t != h {
            out.append(slots[t & (Self.capacity - 1)])
            t &+= 1
        }
        tail.store(t, ordering: .releasing)
        return out
    }
}
