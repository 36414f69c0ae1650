import CXDP
import Foundation
import Glibc
import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowCache
import VSwiftPacket

/// `xdp-cache`'s rule-table case: the entries a real rule table produces, computed as the
/// installer computes them — `FlowCacheView.decide` (the megaflow lookup over the table, the
/// cacheability verdict) then `XDPFlowCacheTranslation.translate` — for the hot flows of the
/// `forward --rules N --flows F` scenario (VSwiftSwitch.flowTable: N rules in two subtables, the
/// generator's flows UDP source ports 1024 + i), installed in an XDP cache, and a hot flow's
/// frame measured under BPF_PROG_RUN; then a new flow of the same table (a miss probing the
/// masks those entries use).
extension XDPCacheBench {
    func measureRuleTable(object: String, rules ruleCount: Int, hotFlows: Int) throws {
        let built = Date()
        let rules = VSwiftSwitch.flowTable(ruleCount)
        let table = ClassifierTable(count: rules.count) { i in
            ClassifierEntry(match: rules[i].match, priority: rules[i].priority, sequence: rules[i].sequence, rule: RuleIndex(i))
        }
        let view = FlowCacheView(table: table, rule: { (rules[$0.position!].sequence, rules[$0.position!].actions) },
                                 port: { _ in CachePort(kind: .device) })
        // OpenFlow 1 is s0 (the input), 2 is s1: port slots 1 and 2, s1's DEVMAP slot sends to lo.
        let ports: [UInt32: XDPCachePortInfo] = [1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: PortSlot(rawValue: 1)),
                                                 2: XDPCachePortInfo(cache: CachePort(kind: .device), slot: PortSlot(rawValue: 2))]
        let cache = try XDPFlowCache(capacity: max(65_536, hotFlows), portSlots: 16)
        let program = try XDPFlowCacheProgram(objectPath: object, cache: cache,
                                              inPort: XDPFlowCacheTranslation.inPortID(PortSlot(rawValue: 1)))
        try cache.setPort(slot: 2, ifindex: if_nametoindex("lo"))
        try cache.setEnabled(true)
        var maskSlots: [FlowKey: Int] = [:]
        var installedKeys: Set<FlowKeyPairKey> = []
        var skipped = 0
        for flow in 0..<hotFlows {
            let f = Self.ruleTableFrame(flow: flow)
            var key = FlowKey()
            f.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: 1, into: &key) }
            guard case .install(let cached) = view.decide(key),
                  let entry = XDPFlowCacheTranslation.translate(cached, port: { ports[$0] }) else {
                skipped += 1
                continue
            }
            let slot: Int
            if let known = maskSlots[entry.mask] {
                slot = known
            } else {
                guard let added = try cache.addMask(entry.mask) else { throw BenchError.failed("no free mask slot") }
                maskSlots[entry.mask] = added
                slot = added
            }
            // Two flows in one megaflow make one entry (the installer refuses the second as a duplicate).
            if installedKeys.insert(FlowKeyPairKey(mask: entry.mask, key: entry.maskedKey)).inserted {
                _ = try cache.install(maskSlot: slot, key: entry.maskedKey, actions: entry.actions)
            }
        }
        print(String(format: "(%d rules, %d hot flows: %d entries in %d mask(s), %d not cacheable, in %.1f s)",
                     ruleCount, hotFlows, cache.entryCount, maskSlots.count, skipped, Date().timeIntervalSince(built)))
        let masks = maskSlots.count, entries = cache.entryCount
        try measure("hit, \(ruleCount)-rule table, hot flow \(hotFlows / 2)", program, Self.ruleTableFrame(flow: hotFlows / 2), masks: masks, entries: entries)
        try measure("hit, \(ruleCount)-rule table, hot flow 0", program, Self.ruleTableFrame(flow: 0), masks: masks, entries: entries)
        try measure("miss, \(ruleCount)-rule table, a new flow", program, Self.ruleTableFrame(flow: hotFlows + 1), masks: masks, entries: entries)
    }

    /// The generator's frame of flow `flow` (UDP source port 1024 + flow), 60 bytes.
    static func ruleTableFrame(flow: Int) -> [UInt8] {
        var f = FrameTemplate.udp(size: 60, source: [2, 0, 0, 0, 0, 1], destination: [2, 0, 0, 0, 0, 2])
        let port = Int(FrameTemplate.baseSourcePort) + flow
        f[34] = UInt8(port >> 8); f[35] = UInt8(port & 0xff)
        return f
    }
}

private struct FlowKeyPairKey: Hashable {
    var mask: FlowKey
    var key: FlowKey
}
