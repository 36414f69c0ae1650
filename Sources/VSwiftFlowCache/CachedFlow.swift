import VSwiftClassifier
import VSwiftPacket

/// One flow-cache entry as the installer computes it and `MegaflowTable` records it: the
/// megaflow (mask, masked key; FlowKey's own layout, which the XDP side's keys share), the rule
/// it came from and the actions it carries.
public struct CachedFlow: Equatable, Sendable {
    /// The classifier's megaflow mask, the packet's shape and the bits the actions read.
    public var mask: FlowKey
    /// The key masked by `mask`: every frame whose key k has k & mask == maskedKey hits.
    public var maskedKey: FlowKey
    /// The rule's index in version `version`'s rule array (where its counters are), `.miss` for
    /// the table-miss flow (drop).
    public var rule: RuleIndex
    /// The rule's identity across versions (the control plane's, e.g. its sequence number): a
    /// changed identity is a changed result, even where the actions happen to be equal, since
    /// the counters belong to the rule. nil for a table miss.
    public var ruleID: UInt64?
    /// What a hit does. Empty: drop.
    public var actions: [FlowAction]
    /// The flow-table version (`ClassifierTable.version`) this entry was computed from.
    public var version: UInt64

    public init(mask: FlowKey, maskedKey: FlowKey, rule: RuleIndex, ruleID: UInt64?, actions: [FlowAction], version: UInt64) {
        self.mask = mask
        self.maskedKey = maskedKey
        self.rule = rule
        self.ruleID = ruleID
        self.actions = actions
        self.version = version
    }

    /// Same megaflow, same rule, same actions: what revalidation compares (not the rule index,
    /// which moves between versions, nor the version).
    public func sameResult(as other: CachedFlow) -> Bool {
        mask == other.mask && maskedKey == other.maskedKey && ruleID == other.ruleID && actions == other.actions
    }

    /// The input port (always in the mask: `FlowShape`).
    public var inPort: UInt32 { UInt32(truncatingIfNeeded: maskedKey.get(.inPort)) }

    /// Every port number the actions name (including ports that do not exist yet: adding one
    /// changes what the actions do), LOCAL for `.local` and the input port for IN_PORT.
    public var outputPorts: [UInt32] {
        actions.compactMap { action in
            switch action {
            case .output(let port): return port
            case .local: return OpenFlowPort.local
            case .inPort: return inPort
            default: return nil
            }
        }
    }
}

/// What the installer does with a classified key.
public enum CacheDecision: Sendable, Equatable {
    case install(CachedFlow)
    case notCacheable(NotCacheable)
}

/// A flow table as the cache's installer and revalidator see it: the classifier version, each
/// rule's identity and actions, and the ports. Both compute entries through `decide(_:)`, so a
/// revalidated entry is kept exactly when a fresh install would produce it again.
public struct FlowCacheView {
    public var table: ClassifierTable
    /// Identity and actions of the rule at a `RuleIndex` of `table`.
    public var rule: (RuleIndex) -> (id: UInt64, actions: [FlowAction])
    public var port: (UInt32) -> CachePort

    public init(table: ClassifierTable, rule: @escaping (RuleIndex) -> (id: UInt64, actions: [FlowAction]),
                port: @escaping (UInt32) -> CachePort) {
        self.table = table
        self.rule = rule
        self.port = port
    }

    /// The entry for frames like `key`, or why there is none. Reads only bits the entry's mask
    /// keeps (the megaflow's, and the actions' `extraMask`), so any key inside the entry gives
    /// the same decision.
    public func decide(_ key: FlowKey) -> CacheDecision {
        let megaflow = table.megaflowLookup(key)
        let identity: (id: UInt64, actions: [FlowAction])? = megaflow.rule.isMiss ? nil : rule(megaflow.rule)
        let actions = identity?.actions ?? []
        switch XDPCacheability.verdict(actions: actions, key: key, port: port) {
        case .notCacheable(let reason):
            return .notCacheable(reason)
        case .cacheable(let extra):
            var mask = megaflow.mask
            var masked = FlowKey()
            for w in 0..<FlowKey.wordCount {
                mask[word: w] |= extra[word: w]
                masked[word: w] = key[word: w] & mask[word: w]
            }
            return .install(CachedFlow(mask: mask, maskedKey: masked, rule: megaflow.rule, ruleID: identity?.id,
                                       actions: actions, version: table.version))
        }
    }
}
