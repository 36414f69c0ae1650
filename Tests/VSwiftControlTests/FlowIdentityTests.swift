import Testing
import VSwiftPacket
import VSwiftTesting
import VSwiftClassifier
import VSwiftDatapath
@testable import VSwiftControl

@Suite struct FlowIdentityTests {
    /// The compact identity gives back its match exactly, whatever the words used (also more
    /// than are stored inline), and is equal (with equal hashes) exactly when match and priority are.
    @Test func compactIdentityKeepsTheMatch() {
        var matches: [Match] = [Match()]
        var generator = SplitMix64(seed: TestSeed.resolve(22))
        let replay = TestSeed.replay(generator.seed)
        let fields = FlowField.allCases
        for count in 1...fields.count {
            for _ in 0..<20 {
                var match = Match()
                for field in fields.shuffled(using: &generator).prefix(count) {
                    match.set(field, UInt64.random(in: 0...UInt64.max, using: &generator),
                              mask: Bool.random(using: &generator) ? nil : UInt64.random(in: 1...UInt64.max, using: &generator))
                }
                matches.append(match)
            }
        }
        var seen: [FlowIdentity: Int] = [:]
        for (index, match) in matches.enumerated() {
            for priority: UInt16 in [0, 7] {
                let id = FlowIdentity(match: match, priority: priority)
                #expect(id.match == match, "\(replay)")
                #expect(id.priority == priority, "\(replay)")
                let again = FlowIdentity(match: id.match, priority: priority)
                #expect(again == id && again.hashValue == id.hashValue, "\(replay)")
                #expect(id.hasSameMatch(as: FlowIdentity(match: match, priority: priority &+ 1)), "\(replay)")
                seen[id] = index
            }
        }
        // Distinct matches stay distinct keys (equal random matches are practically impossible).
        #expect(seen.count == matches.count * 2, "\(replay)")
        for (id, index) in seen { #expect(id.match == matches[index], "\(replay)") }
    }
}
