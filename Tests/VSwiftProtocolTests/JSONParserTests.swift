import Foundation
import Testing
@testable import VSwiftProtocol

@Suite struct JSONParserTests {
    private func parse(_ text: String) -> JSONValue? { JSONParser.parse(Array(text.utf8)) }

    @Test func values() {
        #expect(parse(#" {"a": [1, -2, 3.5, true, false, null, "x"], "b": {}} "#)
            == .object(["a": [1, -2, 3.5, true, false, .null, "x"], "b": .object([:])]))
        #expect(parse("[]") == .array([]))
        #expect(parse(#""""#) == .string(""))
        // Whole numbers with a fraction or exponent read as JSONDecoder reads them.
        #expect(parse("[1.0, 1e2, -0.0, 1e300, 0.5]") == [.int(1), .int(100), .int(0), .double(1e300), .double(0.5)])
        #expect(parse("[18446744073709551615, 18446744073709551616]") == [.uint(.max), .double(18446744073709551616)])
    }

    @Test func escapes() {
        #expect(parse(#""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{8}\u{C}\n\r\t"))
        #expect(parse(#""\u00e9\u20AC\ud83d\ude00 é""#) == .string("é€😀 é"))
        // Unpaired surrogates are not text.
        #expect(parse(#""\ud83d""#) == nil)
        #expect(parse(#""\ude00""#) == nil)
        #expect(parse(#""\ud83d\u0041""#) == nil)
    }

    @Test func invalid() {
        for text in [
            "", " ", "[", "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\":1,}", "{1:2}", "01", "1.", ".5", "+1", "-", "1e", "tru",
            "nul", "[1]x", "\"a", "\"\u{1}\"", "\"\\x\"", "\"\\u12\"", "NaN", "[1e999]",
        ] {
            #expect(parse(text) == nil, "\(text)")
        }
        #expect(JSONParser.parse([0x22, 0xFF, 0x22]) == nil)  // not UTF-8
        #expect(parse(String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)) == nil)
        #expect(parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)) != nil)
    }

    @Test func agreesWithJSONDecoderOnOurOwnOutput() throws {
        let value: JSONValue = [
            "s": "q\"\\\n\u{1}é😀", "n": [0, -1, .int(.min), .uint(.max), 2.5, -1e-7], "o": ["k": .null, "b": false],
        ]
        let text = value.jsonText(pretty: true)
        #expect(JSONParser.parse(text) == value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(text)) == value)
    }

    @Test func aMillionStringsAreQuick() {
        let value = JSONValue.array((0..<200_000).map { .string("priority=\($0),ip,nw_src=10.1.1.0/24,actions=output:2") })
        let text = value.jsonText()
        let start = ContinuousClock.now
        #expect(JSONParser.parse(text) == value)
        // Far below what JSONDecoder takes (seconds), even unoptimized.
        #expect(ContinuousClock.now - start < .seconds(10))
    }
}
