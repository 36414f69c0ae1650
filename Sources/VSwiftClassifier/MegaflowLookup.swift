import VSwiftPacket

/// A classification with its *megaflow*: the bits of the key the result depended on (OVS calls
/// them the wildcards). Every key that agrees with the classified key on `mask` classifies to
/// `rule` in the same table (the property `MegaflowPropertyTests` checks), so a flow cache may
/// hold one entry (`mask`, key & `mask`) for all of them.
public struct Megaflow: Equatable, Sendable {
    public var rule: RuleIndex
    /// The union of the masks of every subtable the search examined, plus the packet's shape
    /// (`FlowShape.mask(of:)`): in_port and the fields the parser branched on.
    public var mask: FlowKey
    /// The classified key, masked by `mask`.
    public var maskedKey: FlowKey

    public init(rule: RuleIndex, mask: FlowKey, maskedKey: FlowKey) {
        self.rule = rule
        self.mask = mask
        self.maskedKey = maskedKey
    }
}

extension ClassifierTable {
    /// `lookup(_:)` that also says which bits of `key` decided the result: for a flow cache's
    /// installer, on a miss, never per packet of the hot path (which keeps `lookupWords`, with no
    /// mask to carry). The same search in the same order with the same early stop, so it returns
    /// the same rule (`MegaflowPropertyTests` checks both against a linear scan).
    ///
    /// Why the union of the examined subtables is enough (OVS lib/classifier.c's reasoning): a key
    /// k' that agrees with `key` on every examined subtable's mask has the same masked key in each
    /// of them, so each probe finds what it found for `key`; the best-so-far is then the same after
    /// every step, so the early stop happens at the same subtable. A subtable that was examined and
    /// missed still counts (k' must miss it too); one never reached cannot change the result. An
    /// empty subtable (all its rules removed, kept by `init(_:removing:where:)`) can match nothing
    /// whatever the key, so its mask adds nothing.
    public func megaflowLookup(_ key: FlowKey) -> Megaflow {
        var key = key
        var mask = FlowShape.mask(of: key)
        let rule = withUnsafePointer(to: &key) { kp in
            kp.withMemoryRebound(to: UInt64.self, capacity: FlowKey.wordCount) { k -> RuleIndex in
                var bestRank = UInt32.max
                var bestPriority: Int32 = -1
                var bestRule = RuleIndex.miss
                for s in 0..<subtableCount {
                    let st = subtables + s
                    if st.pointee.maxPriority < bestPriority { break }
                    guard st.pointee.entryCount > 0 else { continue }
                    for j in 0..<st.pointee.wordCount {
                        let w = Int(st.pointee.words[j])
                        mask[word: w] |= st.pointee.mask[j]
                    }
                    let h = hashWords(k, st.pointee.mask, st.pointee.words, st.pointee.wordCount)
                    let slot = st.pointee.firstCandidate(h, from: Int(h) & st.pointee.slotMask)
                    if slot >= 0, let (rank, priority, rule) = st.pointee.probe(k, h, from: slot), rank < bestRank {
                        bestRank = rank
                        bestPriority = priority
                        bestRule = rule
                    }
                }
                return bestRule
            }
        }
        var masked = FlowKey()
        for w in 0..<FlowKey.wordCount { masked[word: w] = key[word: w] & mask[word: w] }
        return Megaflow(rule: rule, mask: mask, maskedKey: masked)
    }
}
