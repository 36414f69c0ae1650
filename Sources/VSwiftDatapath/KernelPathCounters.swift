import CXDP
import Glibc

/// Packets and bytes the XDP programs forwarded without a worker, per rule counter slot and per
/// port slot, summed where the workers' counters are summed (dump-flows, dump-ports). Written
/// only by the installer (under its lock); read relaxed by anyone, as the workers' counters are.
// @unchecked: raw counter blocks, one writer (the installer's lock), relaxed readers.
final class KernelPathCounters: @unchecked Sendable {
    let rules: UnsafeMutablePointer<RuleCounterBlock>
    let ports: UnsafeMutablePointer<PortCounterBlock>
    /// Per LISP port slot: packets encapsulated in XDP (its `encapsulated` tunnel counter).
    let encapsulated: UnsafeMutablePointer<UInt64>
    /// Per LISP port slot: packets decapsulated in XDP (its `decapsulated` tunnel counter).
    let decapsulated: UnsafeMutablePointer<UInt64>

    /// calloc: zero pages the kernel maps on first write (2M rule slots, 64 MiB untouched).
    init() {
        rules = calloc(DatapathLimits.maxRules, MemoryLayout<RuleCounterBlock>.stride)!
            .bindMemory(to: RuleCounterBlock.self, capacity: DatapathLimits.maxRules)
        ports = calloc(DatapathLimits.maxPorts, MemoryLayout<PortCounterBlock>.stride)!
            .bindMemory(to: PortCounterBlock.self, capacity: DatapathLimits.maxPorts)
        encapsulated = calloc(DatapathLimits.maxPorts, MemoryLayout<UInt64>.stride)!
            .bindMemory(to: UInt64.self, capacity: DatapathLimits.maxPorts)
        decapsulated = calloc(DatapathLimits.maxPorts, MemoryLayout<UInt64>.stride)!
            .bindMemory(to: UInt64.self, capacity: DatapathLimits.maxPorts)
    }

    deinit {
        free(rules)
        free(ports)
        free(encapsulated)
        free(decapsulated)
    }

    /// Zeroes a rule slot before it is given to a new rule (no table uses it: nothing adds to it).
    func clearRule(_ slot: Int) {
        rules[slot] = RuleCounterBlock()
    }
}
