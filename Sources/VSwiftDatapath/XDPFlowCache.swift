import CXDP
import Glibc
import VSwiftPacket

/// The XDP flow cache's maps, shared by every device's redirect program of one datapath
/// (bpf/vswift_flowcache.h; DESIGN.md, "XDP flow cache"). Created here once at their real sizes;
/// each program is loaded with `sharedMaps` (`bpf_map__reuse_fd`).
///
/// Entries are OVS-style megaflows: (mask, masked key) → actions, keyed by FlowKey's own 16-word
/// layout. The caller (a worker, next session's wiring) guarantees that installed entries never
/// overlap, so the XDP lookup's first hit in mask-slot order is the only possible one.
///
/// Bounded: at most `capacity` entries (a full cache refuses and counts), `maxMasks` masks,
/// `XDPFlowCacheEntryLayout.maxActions` actions per entry. Not thread-safe: one owner (the
/// datapath's control side) calls it.
public final class XDPFlowCache {
    public static let maxMasks = 32
    /// The map names of bpf/vswift_flowcache.h that every program shares.
    static let sharedMapNames = ["vswift_fc_control", "vswift_fc_masks", "vswift_fc_table",
                                 "vswift_fc_entries", "vswift_fc_counters", "vswift_fc_ports", "vswift_fc_lisp",
                                 "vswift_fc_table2", "vswift_fc_table6", "vswift_fc_decap", "vswift_fc_decap_counters"]
    static let keySize = FlowKey.wordCount * 8
    static let tableKeySize = 8 + keySize
    static let counterSize = 24
    public static let lispTemplates = 256
    static let lispTemplateSize = 72

    public enum InstallError: Error, Equatable, Sendable {
        /// `capacity` entries are installed (counted in `refusedFull`).
        case full
        /// More than `XDPFlowCacheEntryLayout.maxActions` actions, or actions after an output/drop.
        case unencodable
        case noSuchMask(Int)
        /// The same (mask, masked key) is installed already.
        case exists
        case system(String)
    }

    public let capacity: Int
    public let portSlots: Int
    let controlFD: Int32, masksFD: Int32, tableFD: Int32, entriesFD: Int32, countersFD: Int32, portsFD: Int32, lispFD: Int32
    /// The compact tables (`XDPFlowCacheMask`'s size classes 2 and 6).
    let table2FD: Int32, table6FD: Int32
    /// LISP decap entries and their counters (XDPDecapEntries.swift).
    let decapFD: Int32, decapCountersFD: Int32

    /// Mask slots in use (nil: free) and the number of slots the program scans.
    private var masks: [XDPFlowCacheMask?] = Array(repeating: nil, count: XDPFlowCache.maxMasks)
    private var enabled = false
    /// Entry id → its table key (mask slot, masked key); free ids are reused lowest-last.
    private var entries: [Int: (slot: Int, key: FlowKey)] = [:]
    private var freeIDs: [UInt32]
    /// Installs refused because the cache was full.
    public private(set) var refusedFull: UInt64 = 0

    public var sharedMaps: [String: Int32] {
        Dictionary(uniqueKeysWithValues: zip(Self.sharedMapNames, allFDs))
    }

    private var allFDs: [Int32] {
        [controlFD, masksFD, tableFD, entriesFD, countersFD, portsFD, lispFD, table2FD, table6FD, decapFD, decapCountersFD]
    }

    public var entryCount: Int { entries.count }

    /// Compact keys and the shape filter (`XDPFlowCacheMask`); both off is the first structure
    /// (every mask probed with the 136-byte key), for the bench's before/after.
    let compactKeys: Bool, shapeFilter: Bool

    public init(capacity: Int = 65536, portSlots: Int = 256, compactKeys: Bool = true, shapeFilter: Bool = true) throws(DatapathError) {
        precondition(capacity > 0 && portSlots > 0)
        self.capacity = capacity
        self.portSlots = portSlots
        self.compactKeys = compactKeys
        self.shapeFilter = shapeFilter
        var created: [Int32] = []
        func create(_ type: bpf_map_type, _ name: String, key: Int, value: Int, entries: Int, flags: UInt32 = 0) throws(DatapathError) -> Int32 {
            let fd = vs_bpf_map_create(type.rawValue, name, UInt32(key), UInt32(value), UInt32(entries), flags)
            guard fd >= 0 else {
                for fd in created { Glibc.close(fd) }
                throw .system(SystemError("create BPF map \(name)", negativeErrno: fd))
            }
            created.append(fd)
            return fd
        }
        controlFD = try create(BPF_MAP_TYPE_ARRAY, "vswift_fc_contr", key: 4, value: 8, entries: 1)
        masksFD = try create(BPF_MAP_TYPE_ARRAY, "vswift_fc_masks", key: 4, value: XDPFlowCacheMask.size, entries: Self.maxMasks)
        tableFD = try create(BPF_MAP_TYPE_HASH, "vswift_fc_table", key: Self.tableKeySize, value: 4, entries: capacity,
                             flags: UInt32(BPF_F_NO_PREALLOC))
        table2FD = try create(BPF_MAP_TYPE_HASH, "vswift_fc_tabl2", key: 8 + 8 * XDPFlowCacheMask.smallClass, value: 4,
                              entries: capacity, flags: UInt32(BPF_F_NO_PREALLOC))
        table6FD = try create(BPF_MAP_TYPE_HASH, "vswift_fc_tabl6", key: 8 + 8 * XDPFlowCacheMask.largeClass, value: 4,
                              entries: capacity, flags: UInt32(BPF_F_NO_PREALLOC))
        entriesFD = try create(BPF_MAP_TYPE_ARRAY, "vswift_fc_entri", key: 4, value: XDPFlowCacheEntryLayout.size, entries: capacity)
        countersFD = try create(BPF_MAP_TYPE_PERCPU_ARRAY, "vswift_fc_count", key: 4, value: Self.counterSize, entries: capacity)
        portsFD = try create(BPF_MAP_TYPE_DEVMAP, "vswift_fc_ports", key: 4, value: 4, entries: portSlots)
        lispFD = try create(BPF_MAP_TYPE_ARRAY, "vswift_fc_lisp", key: 4, value: Self.lispTemplateSize, entries: Self.lispTemplates)
        decapFD = try create(BPF_MAP_TYPE_HASH, "vswift_fc_decap", key: XDPDecapKey.size, value: 8,
                             entries: Self.decapCapacity)
        decapCountersFD = try create(BPF_MAP_TYPE_PERCPU_ARRAY, "vswift_fc_dcnt", key: 4, value: 16,
                                     entries: Self.decapCapacity)
        freeIDs = (0..<UInt32(capacity)).reversed()
    }

    deinit {
        for fd in allFDs { Glibc.close(fd) }
    }

    // MARK: Control

    /// Off: every frame is a miss (the programs read one map and go on to the AF_XDP socket).
    public func setEnabled(_ on: Bool) throws(DatapathError) {
        enabled = on
        try writeControl()
    }

    private func writeControl() throws(DatapathError) {
        let scanned = (masks.lastIndex { $0 != nil } ?? -1) + 1
        var zero: UInt32 = 0
        var control: (UInt32, UInt32) = (enabled ? 1 : 0, UInt32(scanned))
        guard bpf_map_update_elem(controlFD, &zero, &control, 0) == 0 else {
            throw .system(SystemError("write XDP flow cache control"))
        }
    }

    /// Output slot `slot` sends to the device `ifindex` (XDP_REDIRECT through the DEVMAP).
    public func setPort(slot: UInt32, ifindex: UInt32) throws(DatapathError) {
        var key = slot, value = ifindex
        guard bpf_map_update_elem(portsFD, &key, &value, 0) == 0 else {
            throw .system(SystemError("set XDP flow cache port slot \(slot) to ifindex \(ifindex)"))
        }
    }

    public func clearPort(slot: UInt32) {
        var key = slot
        _ = bpf_map_delete_elem(portsFD, &key)
    }

    /// The outer headers of a LISP encapsulation over IPv4 or IPv6 (`struct vswift_fc_lisp`): what
    /// `LISP.encapsulate` takes from `EncapsulationParameters` and `OuterFields` once the next hop
    /// is resolved. The outer family is the RLOCs' (both IPv4 or both IPv6). Over IPv6 the XDP
    /// program computes the UDP checksum over the whole datagram, as `LISP.encapsulate` does
    /// without offload (with offload the device completes the same checksum).
    public struct LISPTemplate: Equatable, Sendable {
        public var ethernetDestination: UInt64
        public var ethernetSource: UInt64
        public var sourceAddress: IPAddress
        public var destinationAddress: IPAddress
        public var instanceID: UInt32
        public var udpDestinationPort: UInt16
        public var fields: LISP.OuterFields
        /// The egress device's MTU. A frame with `length - 14 + 36` (IPv4 outer) or `+ 56` (IPv6)
        /// above it is left to the workers, which fragment or answer ICMP too big (DESIGN.md,
        /// "LISP path MTU and outer reassembly"); 0 leaves every frame to them.
        public var egressMTU: UInt16

        /// The IPv4 RLOCs (0 when the template is IPv6).
        public var source: UInt32 {
            get { sourceAddress.isIPv4 ? sourceAddress.ipv4 : 0 }
            set { sourceAddress = IPAddress(ipv4: newValue) }
        }
        public var destination: UInt32 {
            get { destinationAddress.isIPv4 ? destinationAddress.ipv4 : 0 }
            set { destinationAddress = IPAddress(ipv4: newValue) }
        }

        public init(ethernetDestination: UInt64, ethernetSource: UInt64, source: UInt32, destination: UInt32,
                    instanceID: UInt32, udpDestinationPort: UInt16 = 4341, fields: LISP.OuterFields = LISP.OuterFields(),
                    egressMTU: UInt16 = 1500) {
            self.init(ethernetDestination: ethernetDestination, ethernetSource: ethernetSource,
                      sourceAddress: IPAddress(ipv4: source), destinationAddress: IPAddress(ipv4: destination),
                      instanceID: instanceID, udpDestinationPort: udpDestinationPort, fields: fields, egressMTU: egressMTU)
        }

        public init(ethernetDestination: UInt64, ethernetSource: UInt64, sourceAddress: IPAddress,
                    destinationAddress: IPAddress, instanceID: UInt32, udpDestinationPort: UInt16 = 4341,
                    fields: LISP.OuterFields = LISP.OuterFields(), egressMTU: UInt16 = 1500) {
            self.egressMTU = egressMTU
            self.ethernetDestination = ethernetDestination
            self.ethernetSource = ethernetSource
            self.sourceAddress = sourceAddress
            self.destinationAddress = destinationAddress
            self.instanceID = instanceID
            self.udpDestinationPort = udpDestinationPort
            self.fields = fields
        }

        /// Both RLOCs of one family: the outer header is IPv6 when they are IPv6.
        public var isIPv6: Bool { !sourceAddress.isIPv4 }
    }

    /// Sets template `slot`; a template whose RLOCs are of different families is refused.
    public func setLISPTemplate(slot: UInt32, _ template: LISPTemplate) throws(DatapathError) {
        guard template.sourceAddress.isIPv4 == template.destinationAddress.isIPv4 else {
            throw .unsupported("LISP template \(slot): RLOCs \(template.sourceAddress) and \(template.destinationAddress) are of different families")
        }
        var bytes = [UInt8](repeating: 0, count: Self.lispTemplateSize)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: template.ethernetDestination, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: template.ethernetSource, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: template.source, toByteOffset: 16, as: UInt32.self)
            raw.storeBytes(of: template.destination, toByteOffset: 20, as: UInt32.self)
            raw.storeBytes(of: template.instanceID, toByteOffset: 24, as: UInt32.self)
            raw.storeBytes(of: template.udpDestinationPort, toByteOffset: 28, as: UInt16.self)
            raw[30] = template.fields.ttlMask
            raw[31] = template.fields.ttlValue
            raw[32] = template.fields.tosMask
            raw[33] = template.fields.tosValue
            raw[34] = template.isIPv6 ? 6 : 4
            raw.storeBytes(of: template.egressMTU, toByteOffset: 36, as: UInt16.self)
            if template.isIPv6 {
                template.sourceAddress.store(to: raw.baseAddress! + 40)
                template.destinationAddress.store(to: raw.baseAddress! + 56)
            }
        }
        var key = slot
        guard bpf_map_update_elem(lispFD, &key, &bytes, 0) == 0 else {
            throw .system(SystemError("set XDP flow cache LISP template \(slot)"))
        }
    }

    // MARK: Masks

    /// The slot of `mask`, added in the lowest free slot if new; nil when all slots are taken.
    public func addMask(_ mask: FlowKey) throws(DatapathError) -> Int? {
        if let slot = masks.firstIndex(where: { $0?.mask == mask }) { return slot }
        guard let slot = masks.firstIndex(where: { $0 == nil }) else { return nil }
        let entry = XDPFlowCacheMask(mask, compactKeys: compactKeys, shapeFilter: shapeFilter)
        guard writeMask(slot: slot, entry) else { throw .system(SystemError("write XDP flow cache mask \(slot)")) }
        masks[slot] = entry
        try writeControl()
        return slot
    }

    private func writeMask(slot: Int, _ mask: XDPFlowCacheMask) -> Bool {
        var key = UInt32(slot)
        var value = mask.bytes
        return bpf_map_update_elem(masksFD, &key, &value, 0) == 0
    }

    private func tableFD(_ mask: XDPFlowCacheMask) -> Int32 {
        switch mask.sizeClass {
        case XDPFlowCacheMask.smallClass: return table2FD
        case XDPFlowCacheMask.largeClass: return table6FD
        default: return tableFD
        }
    }

    /// Frees `slot` and removes every entry installed under it first (so no lookup meets them).
    public func removeMask(slot: Int) throws(DatapathError) {
        guard masks.indices.contains(slot), masks[slot] != nil else { return }
        for (id, entry) in entries where entry.slot == slot { remove(id: UInt32(id)) }
        masks[slot] = nil
        try writeControl()
    }

    public var maskCount: Int { masks.lazy.filter { $0 != nil }.count }

    // MARK: Entries

    /// Installs (mask slot, `key` masked) → `actions`; returns the entry id (its counters' index).
    /// The actions and zeroed counters are written before the table entry that makes them visible.
    public func install(maskSlot: Int, key: FlowKey, actions: [XDPFlowCacheAction]) throws(InstallError) -> UInt32 {
        guard masks.indices.contains(maskSlot), var slotMask = masks[maskSlot] else { throw .noSuchMask(maskSlot) }
        let mask = slotMask.mask
        guard var entry = XDPFlowCacheEntryLayout.encode(actions) else { throw .unencodable }
        guard let id = freeIDs.popLast() else {
            refusedFull &+= 1
            throw .full
        }
        var masked = FlowKey()
        for w in 0..<FlowKey.wordCount { masked[word: w] = key[word: w] & mask[word: w] }
        var index = id
        var zeros = [UInt64](repeating: 0, count: 3 * possibleCPUs)
        guard bpf_map_update_elem(entriesFD, &index, &entry, 0) == 0,
              bpf_map_update_elem(countersFD, &index, &zeros, 0) == 0 else {
            freeIDs.append(id)
            throw .system("write XDP flow cache entry \(id): \(String(cString: strerror(errno)))")
        }
        // The shape bit before the table entry, so no frame the entry matches skips its slot.
        let bit = slotMask.shapeBit(masked: masked)
        if slotMask.addShape(bit) {
            guard writeMask(slot: maskSlot, slotMask) else {
                freeIDs.append(id)
                throw .system("write XDP flow cache mask \(maskSlot): \(String(cString: strerror(errno)))")
            }
        }
        masks[maskSlot] = slotMask
        var tableKey = slotMask.tableKey(slot: maskSlot, masked: masked)
        var value = id
        guard bpf_map_update_elem(tableFD(slotMask), &tableKey, &value, UInt64(BPF_NOEXIST)) == 0 else {
            let error = errno
            freeIDs.append(id)
            unshape(slot: maskSlot, bit: bit)
            if error == EEXIST { throw .exists }
            if error == E2BIG || error == ENOMEM { refusedFull &+= 1; throw .full }
            throw .system("insert XDP flow cache entry: \(String(cString: strerror(error)))")
        }
        entries[Int(id)] = (maskSlot, masked)
        return id
    }

    /// Removes entry `id` from the table (frames stop matching it at once); its id is reused later.
    public func remove(id: UInt32) {
        guard let entry = entries.removeValue(forKey: Int(id)), let mask = masks[entry.slot] else { return }
        var tableKey = mask.tableKey(slot: entry.slot, masked: entry.key)
        _ = bpf_map_delete_elem(tableFD(mask), &tableKey)
        unshape(slot: entry.slot, bit: mask.shapeBit(masked: entry.key))
        freeIDs.append(id)
    }

    /// Uncounts an entry's shape bit, after its table entry is gone; a bit left set would only
    /// cost a probe, so a failed write is not an error.
    private func unshape(slot: Int, bit: Int) {
        guard var mask = masks[slot] else { return }
        if mask.removeShape(bit) { _ = writeMask(slot: slot, mask) }
        masks[slot] = mask
    }

    /// Everything, masks included.
    public func removeAll() throws(DatapathError) {
        for id in Array(entries.keys) { remove(id: UInt32(id)) }
        for slot in masks.indices where masks[slot] != nil { try removeMask(slot: slot) }
    }

    // MARK: Counters

    public struct Counters: Equatable, Sendable {
        public var packets: UInt64 = 0
        public var bytes: UInt64 = 0
        /// CLOCK_MONOTONIC nanoseconds of the last hit on any CPU (0: never).
        public var lastUsedNanoseconds: UInt64 = 0
        public init() {}
    }

    /// Entry `id`'s counters summed over CPUs (the latest use, for the time).
    public func counters(id: UInt32) -> Counters {
        var values = [UInt64](repeating: 0, count: 3 * possibleCPUs)
        var key = id
        var sum = Counters()
        guard bpf_map_lookup_elem(countersFD, &key, &values) == 0 else { return sum }
        for cpu in 0..<possibleCPUs {
            sum.packets &+= values[3 * cpu]
            sum.bytes &+= values[3 * cpu + 1]
            sum.lastUsedNanoseconds = max(sum.lastUsedNanoseconds, values[3 * cpu + 2])
        }
        return sum
    }

    public func resetCounters(id: UInt32) {
        var zeros = [UInt64](repeating: 0, count: 3 * possibleCPUs)
        var key = id
        _ = bpf_map_update_elem(countersFD, &key, &zeros, 0)
    }

    var possibleCPUs: Int { max(Int(libbpf_num_possible_cpus()), 1) }
}

/// One device's redirect program loaded with the cache's shared maps (for BPF_PROG_RUN tests and
/// the bench; attaching it to a device is XDPRedirectProgram's job, wired next).
public final class XDPFlowCacheProgram {
    public let object: BPFObjectFile
    public let programFD: Int32
    let portFD: Int32
    let statsFD: Int32
    let scratchFD: Int32

    /// Per-program outcomes of the cache (`enum vswift_fc_stat`), summed over CPUs.
    public struct Statistics: Equatable, Sendable {
        public var hits: UInt64 = 0, misses: UInt64 = 0, punted: UInt64 = 0, failed: UInt64 = 0
        public init() {}
        init(hits: UInt64, misses: UInt64, punted: UInt64, failed: UInt64) {
            (self.hits, self.misses, self.punted, self.failed) = (hits, misses, punted, failed)
        }
    }

    public init(objectPath: String, cache: XDPFlowCache, inPort: UInt32) throws(DatapathError) {
        object = try BPFObjectFile(path: objectPath, reusing: cache.sharedMaps)
        programFD = try object.programFD("vswift_redirect")
        portFD = try object.mapFD("vswift_fc_port")
        statsFD = try object.mapFD("vswift_fc_stats")
        scratchFD = try object.mapFD("vswift_fc_scratch")
        var zero: UInt32 = 0
        var port = inPort
        guard bpf_map_update_elem(portFD, &zero, &port, 0) == 0 else {
            throw .system(SystemError("set the XDP flow cache's in_port"))
        }
    }

    /// `struct vswift_fc_scratch`'s size and where its `ip_id` is (the next outer IPv4
    /// identification of a CPU's LISP encapsulation).
    static let scratchSize = 288, scratchIPIdentification = 280

    /// Sets every CPU's next outer IPv4 identification (tests compare encapsulations byte for byte).
    public func setNextIPIdentification(_ id: UInt16) throws(DatapathError) {
        let cpus = max(Int(libbpf_num_possible_cpus()), 1)
        var values = [UInt8](repeating: 0, count: cpus * Self.scratchSize)
        for cpu in 0..<cpus {
            values.withUnsafeMutableBytes {
                $0.storeBytes(of: UInt32(id), toByteOffset: cpu * Self.scratchSize + Self.scratchIPIdentification, as: UInt32.self)
            }
        }
        var zero: UInt32 = 0
        guard bpf_map_update_elem(scratchFD, &zero, &values, 0) == 0 else {
            throw .system(SystemError("write the XDP flow cache's scratch"))
        }
    }

    public func statistics() -> Statistics {
        let cpus = max(Int(libbpf_num_possible_cpus()), 1)
        var values = [UInt64](repeating: 0, count: cpus)
        var totals = [UInt64](repeating: 0, count: 4)
        for stat in 0..<4 {
            var key = UInt32(stat)
            if bpf_map_lookup_elem(statsFD, &key, &values) == 0 { totals[stat] = values.reduce(0, &+) }
        }
        return Statistics(hits: totals[0], misses: totals[1], punted: totals[2], failed: totals[3])
    }
}
