import CXDP
import Glibc
import VSwiftPacket

/// What an underlay device's XDP program must see in a LISP packet before it may unwrap it for a
/// LISP port (bpf/vswift_decap.h, `struct vswift_fc_decap_key`): exactly what the worker checks
/// for a port with a fixed `remote_ip` and `key` (DESIGN.md, "Trust boundary: LISP
/// decapsulation"): the device it arrived on (where the remote's route leaves), the local RLOC it
/// was sent to, the remote RLOC it came from, the UDP port and the instance id (0 for a packet
/// without the I bit, as the worker reads it).
public struct XDPDecapKey: Hashable, Sendable {
    public var ifindex: UInt32
    public var localRLOC: IPAddress
    public var remoteRLOC: IPAddress
    public var udpPort: UInt16
    public var instanceID: UInt32

    public init(ifindex: UInt32, localRLOC: IPAddress, remoteRLOC: IPAddress, udpPort: UInt16 = 4341, instanceID: UInt32) {
        self.ifindex = ifindex
        self.localRLOC = localRLOC
        self.remoteRLOC = remoteRLOC
        self.udpPort = udpPort
        self.instanceID = instanceID & 0xff_ffff
    }

    static let size = 44

    /// Both RLOCs of one family (a key of mixed families can match no packet).
    public var isValid: Bool { localRLOC.isIPv4 == remoteRLOC.isIPv4 }

    /// The map key's bytes: ifindex, family, pad, UDP port (host order), instance id, then the
    /// destination (local) and source (remote) addresses in network order, an IPv4 one in the
    /// first four bytes of its sixteen.
    var bytes: [UInt8] {
        var raw = [UInt8](repeating: 0, count: Self.size)
        raw.withUnsafeMutableBytes { p in
            p.storeBytes(of: ifindex, toByteOffset: 0, as: UInt32.self)
            p[4] = localRLOC.isIPv4 ? 4 : 6
            p.storeBytes(of: udpPort, toByteOffset: 6, as: UInt16.self)
            p.storeBytes(of: instanceID, toByteOffset: 8, as: UInt32.self)
            for (offset, address) in [(12, localRLOC), (28, remoteRLOC)] {
                if address.isIPv4 {
                    p.storeBytes(of: address.ipv4.bigEndian, toByteOffset: offset, as: UInt32.self)
                } else {
                    address.store(to: p.baseAddress! + offset)
                }
            }
        }
        return raw
    }
}

/// The LISP decap entries of the XDP flow cache: key → (the LISP port's XDP in_port, a counter
/// slot). Bounded by `decapCapacity` (a full map refuses). Not thread-safe, as the cache.
extension XDPFlowCache {
    /// LISP ports × underlay endpoints stay far below this.
    public static let decapCapacity = 1024

    /// Installs or rewrites the entry for `key`: a packet matching it, whose inner frame hits the
    /// cache, is decapsulated in XDP as arriving on `inPort` (`XDPFlowCacheTranslation.inPortID`)
    /// and counted in counter slot `slot` (< `decapCapacity`; its counters are zeroed first).
    public func setDecapEntry(_ key: XDPDecapKey, inPort: UInt32, slot: UInt32) throws(DatapathError) {
        guard key.isValid, slot < UInt32(Self.decapCapacity) else {
            throw .unsupported("decap entry: RLOCs \(key.localRLOC), \(key.remoteRLOC) of different families or slot \(slot) out of range")
        }
        resetDecapCounters(slot: slot)
        var raw = key.bytes
        var value: (UInt32, UInt32) = (inPort, slot)
        guard bpf_map_update_elem(decapFD, &raw, &value, 0) == 0 else {
            throw .system(SystemError("set XDP decap entry for \(key.remoteRLOC) → \(key.localRLOC)"))
        }
    }

    /// Removes the entry for `key` (packets matching it go to the workers from now on).
    public func removeDecapEntry(_ key: XDPDecapKey) {
        var raw = key.bytes
        _ = bpf_map_delete_elem(decapFD, &raw)
    }

    /// Packets and bytes (the decapsulated frames) that decap counter `slot` saw, over all CPUs.
    public func decapCounters(slot: UInt32) -> (packets: UInt64, bytes: UInt64) {
        var values = [UInt64](repeating: 0, count: 2 * possibleCPUs)
        var key = slot
        guard bpf_map_lookup_elem(decapCountersFD, &key, &values) == 0 else { return (0, 0) }
        var packets: UInt64 = 0, bytes: UInt64 = 0
        for cpu in 0..<possibleCPUs {
            packets &+= values[2 * cpu]
            bytes &+= values[2 * cpu + 1]
        }
        return (packets, bytes)
    }

    public func resetDecapCounters(slot: UInt32) {
        var zeros = [UInt64](repeating: 0, count: 2 * possibleCPUs)
        var key = slot
        _ = bpf_map_update_elem(decapCountersFD, &key, &zeros, 0)
    }
}

extension XDPFlowCacheProgram {
    /// Puts the program in underlay mode steering UDP to (`address`, `port`), as XDPRedirectProgram
    /// does for an underlay device (for BPF_PROG_RUN tests and the bench).
    public func setUnderlay(address: IPAddress, port: UInt16 = 4341) throws(DatapathError) {
        let modeFD = try object.mapFD("vswift_mode")
        let underlayFD = try object.mapFD("vswift_underlay")
        var zero: UInt32 = 0
        var mode: UInt32 = 1
        var raw = [UInt8](repeating: 0, count: 20)
        for i in 0..<8 {
            raw[i] = UInt8(truncatingIfNeeded: address.high >> UInt64(56 - 8 * i))
            raw[8 + i] = UInt8(truncatingIfNeeded: address.low >> UInt64(56 - 8 * i))
        }
        raw[16] = UInt8(port >> 8)
        raw[17] = UInt8(port & 0xff)
        var one: UInt8 = 1
        guard bpf_map_update_elem(modeFD, &zero, &mode, 0) == 0,
              bpf_map_update_elem(underlayFD, &raw, &one, 0) == 0 else {
            throw .system(SystemError("set the program's underlay mode"))
        }
    }
}

/// The Swift owner of the decap entries: what configuration says they must be (`plan`, a pure
/// function of the LISP ports and their resolved next hops) and keeping the map equal to it
/// (`sync`), with a counter slot per entry. One owner thread, as the cache.
public final class XDPDecapEntries {
    /// A LISP port with a fixed `remote_ip` and a fixed `key` (a `remote_ip=flow`/`map` or
    /// `key=flow` port gets no decap entry: its packets stay on the workers), in the workers'
    /// port order, with where its remote's route leaves.
    public struct Port: Equatable, Sendable {
        /// The port's XDP id (`XDPFlowCacheTranslation.inPortID`).
        public var inPort: UInt32
        public var remote: IPAddress
        /// options:local_ip, when set: the worker then takes only packets to it.
        public var local: IPAddress?
        public var key: UInt32
        public var udpPort: UInt16
        /// The resolved next hop's local RLOC and the ifindex of the underlay device its route
        /// leaves by; nil while unresolved, or when the route leaves through a bridge (the
        /// bridge's ports run in port mode, where no decap entry is consulted).
        public var egress: (localRLOC: IPAddress, ifindex: UInt32)?
        /// A capture on the port sees every decapsulated frame: the workers must do them.
        public var capturing: Bool

        public init(inPort: UInt32, remote: IPAddress, local: IPAddress? = nil, key: UInt32, udpPort: UInt16 = 4341,
                    egress: (localRLOC: IPAddress, ifindex: UInt32)?, capturing: Bool = false) {
            self.inPort = inPort
            self.remote = remote
            self.local = local
            self.key = key
            self.udpPort = udpPort
            self.egress = egress
            self.capturing = capturing
        }

        public static func == (a: Port, b: Port) -> Bool {
            a.inPort == b.inPort && a.remote == b.remote && a.local == b.local && a.key == b.key && a.udpPort == b.udpPort
                && a.egress?.localRLOC == b.egress?.localRLOC && a.egress?.ifindex == b.egress?.ifindex && a.capturing == b.capturing
        }
    }

    /// The entries the worker's choice implies (Worker+Tunnel.swift receiveTunnelled): a fixed
    /// port hears its remote only at its next hop's local RLOC (and its local_ip, if set), where
    /// that route leaves, for its own UDP port and instance id; among fixed ports the first in
    /// order wins, and fixed ports win over map and flow ports, so the first port of a key is the
    /// worker's. A capturing port gets none (nor does a later port take its key).
    public static func plan(_ ports: [Port]) -> [XDPDecapKey: UInt32] {
        var entries: [XDPDecapKey: UInt32] = [:]
        var taken: Set<XDPDecapKey> = []
        for port in ports {
            guard let egress = port.egress, port.local == nil || port.local == egress.localRLOC else { continue }
            let key = XDPDecapKey(ifindex: egress.ifindex, localRLOC: egress.localRLOC, remoteRLOC: port.remote,
                                  udpPort: port.udpPort, instanceID: port.key)
            guard key.isValid, port.key <= 0xff_ffff, taken.insert(key).inserted else { continue }
            if !port.capturing { entries[key] = port.inPort }
        }
        return entries
    }

    public let cache: XDPFlowCache
    /// Installed: key → (in_port, counter slot).
    public private(set) var installed: [XDPDecapKey: (inPort: UInt32, slot: UInt32)] = [:]
    private var freeSlots: [UInt32] = (0..<UInt32(XDPFlowCache.decapCapacity)).reversed()

    public init(cache: XDPFlowCache) { self.cache = cache }

    /// What an entry counted in XDP (packets decapsulated and run there, and their bytes), for
    /// the caller to fold into the LISP port's rx counters.
    public struct Removed: Sendable {
        public var key: XDPDecapKey
        public var inPort: UInt32
        public var packets: UInt64
        public var bytes: UInt64
    }

    /// Makes the map exactly `wanted`: new and rewritten entries first, then the stale ones are
    /// deleted (their last counts returned), so when it returns no packet is unwrapped by an
    /// entry the configuration no longer implies. Entries beyond the map's capacity are not
    /// installed (their packets stay on the workers).
    @discardableResult
    public func sync(_ wanted: [XDPDecapKey: UInt32]) throws(DatapathError) -> [Removed] {
        var removed: [Removed] = []
        for (key, inPort) in wanted.sorted(by: { $0.value < $1.value }) {
            if let current = installed[key] {
                if current.inPort == inPort { continue }
                // Another port now: its counts so far belong to the old one.
                let counts = cache.decapCounters(slot: current.slot)
                removed.append(Removed(key: key, inPort: current.inPort, packets: counts.packets, bytes: counts.bytes))
                try cache.setDecapEntry(key, inPort: inPort, slot: current.slot)
                installed[key] = (inPort, current.slot)
                continue
            }
            guard let slot = freeSlots.popLast() else { continue }
            do {
                try cache.setDecapEntry(key, inPort: inPort, slot: slot)
            } catch {
                freeSlots.append(slot)
                throw error
            }
            installed[key] = (inPort, slot)
        }
        for (key, entry) in installed where wanted[key] == nil {
            cache.removeDecapEntry(key)
            let counts = cache.decapCounters(slot: entry.slot)
            removed.append(Removed(key: key, inPort: entry.inPort, packets: counts.packets, bytes: counts.bytes))
            installed[key] = nil
            freeSlots.append(entry.slot)
        }
        return removed
    }

    /// Every installed entry's counts so far (cumulative; the caller folds deltas).
    public func counters() -> [Removed] {
        installed.map { key, entry in
            let counts = cache.decapCounters(slot: entry.slot)
            return Removed(key: key, inPort: entry.inPort, packets: counts.packets, bytes: counts.bytes)
        }
    }
}
