/// RLOC choice, precomputed per entry so the packet path indexes a table instead of looping over
/// locators (RFC 9301 §5.4 Priority and Weight; RFC 9300 §12, Routing Locator Hashing: a hash of
/// the inner flow picks the locator, so a flow keeps its RLOC and packets stay in order).
///
/// Rules, from RFC 9301 §5.4:
/// - only locators that are up and of priority below 255 are usable (255: "MUST NOT be used for
///   unicast forwarding");
/// - the lowest priority value among the usable ones wins; when the best ones are all down the
///   next priority takes over (RFC 6830 §6.2, carried into RFC 9300 §9: the client-side "can use
///   RLOCs outside of the subset list if it determines that the subset list is unreachable");
/// - among the winners, traffic is split by weight, relative to the sum ("30, 20, 20, 10" gives
///   37.5 %, 25 %, 25 %, 12.5 %); a winner of weight 0 among non-zero ones gets nothing; when
///   all winners weigh 0 the ITR decides, and vswift spreads evenly.
public enum LocatorSelection {
    /// Slots of a weighted table: a locator gets round(weight share × 128) of them (largest
    /// remainder), so shares are kept to within 1/128 (0.8 %).
    public static let slots = 128

    /// The table for `locators`: empty when none may be used, one entry when a single locator
    /// wins, otherwise `slots` entries, each the index (in `locators`) of a winner, in proportion
    /// to the winners' weights.
    public static func table(_ locators: [Locator]) -> [UInt8] {
        precondition(locators.count <= Int(UInt8.max), "locator index must fit a byte")
        var best = Int(Locator.unusablePriority)
        for locator in locators where locator.isUp && Int(locator.priority) < best { best = Int(locator.priority) }
        guard best < Int(Locator.unusablePriority) else { return [] }
        let winners = locators.indices.filter { locators[$0].isUp && Int(locators[$0].priority) == best }
        if winners.count == 1 { return [UInt8(winners[0])] }
        var weights = winners.map { Int(locators[$0].weight) }
        if weights.allSatisfy({ $0 == 0 }) { weights = weights.map { _ in 1 } }
        let total = weights.reduce(0, +)
        // Largest remainder: each winner gets floor(share), the leftover slots go to the largest
        // fractional parts (ties to the earlier locator, so the table is deterministic).
        var counts = weights.map { $0 * slots / total }
        let remainders = weights.indices.sorted { a, b in
            let ra = weights[a] * slots % total, rb = weights[b] * slots % total
            return ra != rb ? ra > rb : a < b
        }
        var left = slots - counts.reduce(0, +)
        for i in remainders where left > 0 && weights[i] > 0 {
            counts[i] += 1
            left -= 1
        }
        // Interleaved rather than in runs, so neighbouring hash values spread over the winners
        // too (flow hashes are uniform, but a caller's may not be in its high bits).
        var table: [UInt8] = []
        table.reserveCapacity(slots)
        var given = [Int](repeating: 0, count: winners.count)
        while table.count < slots {
            for i in winners.indices where given[i] < counts[i] {
                table.append(UInt8(winners[i]))
                given[i] += 1
            }
        }
        return table
    }
}
