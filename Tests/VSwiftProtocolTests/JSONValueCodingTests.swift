import Foundation
import Testing

@testable import VSwiftProtocol

/// `JSONValueEncoder`/`JSONValueDecoder` against Foundation's JSONEncoder/JSONDecoder (by way of
/// text, as vswift used them before): the same values, the same wire text, the same errors.
@Suite struct JSONValueCodingTests {
    struct Sample: Codable, Equatable {
        var name: String
        var flag: Bool
        var small: Int8
        var port: UInt32
        var big: UInt64
        var negative: Int64
        var whole: Double
        var fraction: Double
        var huge: Double
        var ratio: Float
        var missing: String?
        var present: Int?
        var list: [Int]
        var names: [String]
        var nested: [[String: UInt16]]
        var options: [String: String]
        var byNumber: [Int: String]
        var value: JSONValue
    }

    private let sample = Sample(
        name: "a\"b\u{1}é", flag: true, small: -3, port: 4_000_000_000, big: .max, negative: .min, whole: 2,
        fraction: 0.1, huge: 1e300, ratio: 0.1, missing: nil, present: 5, list: [], names: ["x", ""],
        nested: [["a": 1], [:]], options: ["remote_ip": "10.0.0.1"], byNumber: [1: "one", 20: "twenty"],
        value: ["k": [1, .null, 2.5]])

    @Test func encodesAsJSONEncoderDid() throws {
        let foundation = try #require(JSONValue.parse(try JSONEncoder().encode(sample)))
        let direct = try JSONValue(encoding: sample)
        #expect(direct == foundation)
        #expect(direct.jsonText() == foundation.jsonText())
        #expect(direct.jsonText(pretty: true) == foundation.jsonText(pretty: true))
    }

    @Test func decodesAsJSONDecoderDid() throws {
        let value = try JSONValue(encoding: sample)
        #expect(try value.decode(Sample.self) == sample)
        #expect(try JSONDecoder().decode(Sample.self, from: Data(value.jsonText())) == sample)
    }

    @Test func refusesWhatJSONEncoderRefused() {
        #expect(throws: RPCError.self) { try JSONValue(encoding: [Double.nan]) }
        #expect(throws: RPCError.self) { try JSONValue(encoding: ["x": Double.infinity]) }
    }

    /// The same `DecodingError` (so the same `fieldMessage`) for each kind of mismatch.
    @Test func errorsNameTheSameField() throws {
        let cases: [JSONValue] = [
            [:], ["bridge": 5], ["bridge": .null], ["bridge": "b", "ports": "x"], ["bridge": "b", "ports": [1, "p"]],
            ["bridge": "b", "ports": ["p"], "options": ["k": 1]], ["bridge": "b", "ports": [], "count": 1.5],
            ["bridge": "b", "ports": [], "count": 300], ["bridge": "b", "ports": [], "count": -1],
            ["bridge": "b", "ports": [], "count": .uint(.max)],
            ["bridge": "b", "ports": [], "flag": "yes"], ["bridge": "b", "ports": [], "rows": [[1], "x"]],
            ["bridge": "b", "ports": [], "rows": [[1, true]]], [1], "text",
        ]
        struct Params: Codable {
            var bridge: String
            var ports: [String]
            var options: [String: String]?
            var count: UInt8?
            var flag: Bool?
            var rows: [[Int]]?
        }
        for value in cases {
            var foundation: String?
            do {
                _ = try JSONDecoder().decode(Params.self, from: Data(value.jsonText()))
            } catch let error as DecodingError {
                foundation = error.fieldMessage
            }
            var direct: String?
            do {
                _ = try JSONValueDecoder.decode(Params.self, from: value)
            } catch let error as DecodingError {
                direct = error.fieldMessage
            }
            #expect(direct != nil, "\(value)")
            // For a number that does not fit, Foundation (on Linux) says only "The given data was not
            // valid JSON."; the direct decoder names the field and the number.
            if foundation == "The given data was not valid JSON." {
                #expect(direct?.contains("\"count\": Parsed JSON number <") == true, "\(value)")
            } else {
                #expect(direct == foundation, "\(value)")
            }
        }
    }
}
