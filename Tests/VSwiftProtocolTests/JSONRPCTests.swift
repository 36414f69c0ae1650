import Foundation
import Testing

@testable import VSwiftProtocol

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

private func parse(_ json: String) throws -> JSONValue {
    try #require(JSONValue.parse(Array(json.utf8)))
}

@Suite struct JSONValueTests {
    @Test func integersStayExact() throws {
        let json = #"[18446744073709551615,-9223372036854775808,9007199254740993,0,1.5,-0.25,1e300]"#
        let value = try parse(json)
        #expect(
            value == .array([.uint(.max), .int(.min), .int(9_007_199_254_740_993), .int(0), .double(1.5), .double(-0.25), .double(1e300)]))
        #expect(try parse(text(value.jsonText())) == value)
    }

    @Test func everyKindRoundTrips() throws {
        let value: JSONValue = [
            "null": .null, "bool": true, "string": "tab\t quote\" backslash\\ newline\n bell\u{07} é ✓",
            "array": [1, "two", [false]], "object": ["nested": ["deeper": 3.25]], "empty": [:], "none": [],
        ]
        #expect(try parse(text(value.jsonText())) == value)
        #expect(try parse(text(value.jsonText(pretty: true))) == value)
        #expect(text(JSONValue.string("\u{07}").jsonText()) == #""\u0007""#)
    }

    @Test func compactAndPrettyText() {
        let value: JSONValue = ["b": [1, 2], "a": ["c": .null], "e": [], "d": [:]]
        #expect(text(value.jsonText()) == #"{"a":{"c":null},"b":[1,2],"d":{},"e":[]}"#)
        #expect(
            text(value.jsonText(pretty: true)) == """
                {
                  "a": {
                    "c": null
                  },
                  "b": [
                    1,
                    2
                  ],
                  "d": {},
                  "e": []
                }
                """)
    }

    @Test func nonFiniteDoublesBecomeNull() {
        #expect(text(JSONValue.array([.double(.nan), .double(.infinity)]).jsonText()) == "[null,null]")
    }

    @Test func largeCountersSurviveEncodableRoundTrip() throws {
        let statistics = PortStatisticsReport(rxPackets: .max, rxBytes: 1 << 60, txPackets: 9_007_199_254_740_993)
        let value = try JSONValue(encoding: statistics)
        guard case .object(let members) = value else { Issue.record("not an object: \(value)"); return }
        #expect(members["rxPackets"] == .uint(.max))
        #expect(try value.decode(PortStatisticsReport.self) == statistics)
        // Through the wire text as well.
        #expect(try parse(text(value.jsonText())).decode(PortStatisticsReport.self) == statistics)
    }

    @Test func codableThroughFoundation() throws {
        let error = RPCError(code: 1, message: "m", data: ["count": .uint(.max), "list": [1.5, "x", .null]])
        let decoded = try JSONDecoder().decode(RPCError.self, from: JSONEncoder().encode(error))
        #expect(decoded == error)
    }
}

@Suite struct DecodeRequestTests {
    private func decode(_ line: String) -> Result<RPCRequest, RPCRequestError> {
        RPCCodec.decodeRequest(Array(line.utf8))
    }

    private func expectFailure(_ line: String, id: JSONValue?, code: Int, message: String) {
        #expect(decode(line) == .failure(RPCRequestError(id: id, error: RPCError(code: code, message: message))))
    }

    @Test func goodRequest() {
        #expect(
            decode(#"{"jsonrpc":"2.0","id":7,"method":"add-br","params":{"bridge":"br0"}}"#)
                == .success(RPCRequest(id: 7, method: "add-br", params: ["bridge": "br0"])))
        #expect(
            decode(#"{"jsonrpc":"2.0","id":"x","method":"show","params":[]}"#)
                == .success(RPCRequest(id: "x", method: "show", params: [])))
    }

    @Test func notificationHasNoID() {
        #expect(decode(#"{"jsonrpc":"2.0","method":"show"}"#) == .success(RPCRequest(id: nil, method: "show")))
        // A null id is an id, not a notification.
        #expect(decode(#"{"jsonrpc":"2.0","id":null,"method":"show"}"#) == .success(RPCRequest(id: .null, method: "show")))
    }

    /// Two readers of a request with a key twice could disagree about it (the last one used to win
    /// silently): refused, at any depth.
    @Test func duplicateKeysAreRefused() {
        let message = "parse error: the request is not valid JSON"
        expectFailure(#"{"jsonrpc":"2.0","id":1,"method":"show","method":"del-br"}"#, id: nil, code: -32700, message: message)
        expectFailure(
            #"{"jsonrpc":"2.0","id":1,"method":"del-br","params":{"bridge":"a","bridge":"b"}}"#, id: nil, code: -32700,
            message: message)
        expectFailure(#"{"jsonrpc":"2.0","id":1,"id":2,"method":"show"}"#, id: nil, code: -32700, message: message)
        #expect(JSONValue.parse(Array(#"[{"a":1},{"a":2}]"#.utf8)) == [["a": 1], ["a": 2]])
        #expect(JSONValue.parse(Array(#"{"a":{"a":1}}"#.utf8)) == ["a": ["a": 1]])
    }

    @Test func idTextIsTheIDAsWritten() throws {
        let request = try decode(#"{"jsonrpc":"2.0","id": 123456789012345678901234567890 ,"method":"show"}"#).get()
        #expect(request.idText == Array("123456789012345678901234567890".utf8))
        let response = RPCCodec.encodeResponse(id: request.id, idText: request.idText, result: .success(.null))
        #expect(String(decoding: response, as: UTF8.self) == #"{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":null}"# + "\n")
    }

    @Test func malformedJSON() {
        expectFailure(#"{"jsonrpc":"2.0","id":1,"#, id: nil, code: -32700, message: "parse error: the request is not valid JSON")
        expectFailure("\u{FF}\u{FE}", id: nil, code: -32700, message: "parse error: the request is not valid JSON")
    }

    @Test func notAnObject() {
        let message = "invalid request: the request must be a JSON object"
        expectFailure(#"[{"jsonrpc":"2.0","id":1,"method":"show"}]"#, id: nil, code: -32600, message: message)
        expectFailure("42", id: nil, code: -32600, message: message)
    }

    @Test func wrongVersion() {
        let message = #"invalid request: "jsonrpc" must be "2.0""#
        expectFailure(#"{"jsonrpc":"1.0","id":3,"method":"show"}"#, id: 3, code: -32600, message: message)
        expectFailure(#"{"id":3,"method":"show"}"#, id: 3, code: -32600, message: message)
    }

    @Test func missingOrWrongMethod() {
        let message = #"invalid request: "method" must be a string"#
        expectFailure(#"{"jsonrpc":"2.0","id":"a"}"#, id: "a", code: -32600, message: message)
        expectFailure(#"{"jsonrpc":"2.0","id":"a","method":5}"#, id: "a", code: -32600, message: message)
    }

    @Test func paramsOfWrongType() {
        let message = #"invalid request: "params" must be an object or an array"#
        expectFailure(#"{"jsonrpc":"2.0","id":4,"method":"show","params":"br0"}"#, id: 4, code: -32600, message: message)
        expectFailure(#"{"jsonrpc":"2.0","id":4,"method":"show","params":null}"#, id: 4, code: -32600, message: message)
    }

    @Test func idOfWrongType() {
        expectFailure(
            #"{"jsonrpc":"2.0","id":{"a":1},"method":"show"}"#, id: nil, code: -32600,
            message: #"invalid request: "id" must be a string, a number or null"#)
    }
}

@Suite struct EncodeTests {
    @Test func successResponse() {
        let line = RPCCodec.encodeResponse(id: 1, result: .success(["ports": [1, 2]]))
        #expect(text(line) == #"{"id":1,"jsonrpc":"2.0","result":{"ports":[1,2]}}"# + "\n")
    }

    @Test func nullResultIsStillAResult() {
        let line = RPCCodec.encodeResponse(id: "a", result: .success(.null))
        #expect(text(line) == #"{"id":"a","jsonrpc":"2.0","result":null}"# + "\n")
    }

    @Test func errorResponse() {
        let line = RPCCodec.encodeResponse(id: "q", result: .failure(.noSuchBridge("br9")))
        #expect(text(line) == #"{"error":{"code":-32001,"message":"no bridge named \"br9\""},"id":"q","jsonrpc":"2.0"}"# + "\n")
    }

    @Test func parseErrorHasNullID() {
        let line = RPCCodec.encodeResponse(id: nil, result: .failure(.parseError))
        #expect(
            text(line) == #"{"error":{"code":-32700,"message":"parse error: the request is not valid JSON"},"id":null,"jsonrpc":"2.0"}"#
                + "\n")
    }

    @Test func errorData() {
        let error = RPCError(code: -32005, message: "busy", data: ["retry": true])
        let line = RPCCodec.encodeResponse(id: 2, result: .failure(error))
        #expect(text(line) == #"{"error":{"code":-32005,"data":{"retry":true},"message":"busy"},"id":2,"jsonrpc":"2.0"}"# + "\n")
    }

    @Test func request() {
        #expect(
            text(RPCCodec.encodeRequest(id: 1, method: "del-br", params: ["bridge": "br0"]))
                == #"{"id":1,"jsonrpc":"2.0","method":"del-br","params":{"bridge":"br0"}}"# + "\n")
        #expect(text(RPCCodec.encodeRequest(id: 2, method: "show", params: nil)) == #"{"id":2,"jsonrpc":"2.0","method":"show"}"# + "\n")
    }

    @Test func responsesReadBack() throws {
        let ok = RPCCodec.encodeResponse(id: 1, result: .success(["n": .uint(.max)]))
        #expect(try RPCCodec.decodeResponse(ok.dropLast()) == .success(["n": .uint(.max)]))
        let failed = RPCCodec.encodeResponse(id: 1, result: .failure(.noSuchPort("p1")))
        #expect(try RPCCodec.decodeResponse(failed.dropLast()) == .failure(.noSuchPort("p1")))
    }

    @Test func badResponsesThrow() {
        for (line, detail) in [
            ("nope", "not valid JSON"),
            (#"{"id":1,"result":1}"#, "not a JSON-RPC 2.0 response"),
            (#"{"jsonrpc":"2.0","id":1}"#, #"it must have exactly one of "result" and "error""#),
            (#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"x"}}"#, #"it must have exactly one of "result" and "error""#),
            (#"{"jsonrpc":"2.0","id":1,"error":{"code":1}}"#, #"error object: missing "message""#),
        ] {
            #expect(throws: RPCError(code: -32700, message: "invalid response: \(detail)")) {
                try RPCCodec.decodeResponse(Array(line.utf8))
            }
        }
    }
}

@Suite struct ParamsTests {
    private func request(_ params: JSONValue?) -> RPCRequest {
        RPCRequest(id: 1, method: "m", params: params)
    }

    @Test func decodes() throws {
        let params = try request(["bridge": "br2", "port": "lisp0", "type": "lisp", "options": ["remote_ip": "1.2.3.4"]])
            .decodeParams(AddPortParams.self)
        #expect(params == AddPortParams(bridge: "br2", port: "lisp0", type: "lisp", options: ["remote_ip": "1.2.3.4"]))
        #expect(try request(["port": "p"]).decodeParams(DelPortParams.self) == DelPortParams(port: "p"))
        #expect(try request(["bridge": "b"]).decodeParams(DumpPortsParams.self) == DumpPortsParams(bridge: "b"))
    }

    @Test func missingField() {
        #expect(throws: RPCError.invalidParams(#"missing "bridge""#)) {
            try request(["port": "p"]).decodeParams(BridgeParams.self)
        }
        // Absent params read as {}.
        #expect(throws: RPCError.invalidParams(#"missing "bridge""#)) { try request(nil).decodeParams(BridgeParams.self) }
    }

    @Test func wrongType() {
        #expect(throws: RPCError.invalidParams(#""port" must be a string"#)) {
            try request(["bridge": "b", "port": 5]).decodeParams(AddPortParams.self)
        }
        #expect(throws: RPCError.invalidParams(#""port" must be a string"#)) {
            try request(["bridge": "b", "port": .null]).decodeParams(AddPortParams.self)
        }
        #expect(throws: RPCError.invalidParams(#""options.remote_ip" must be a string"#)) {
            try request(["bridge": "b", "port": "p", "options": ["remote_ip": 1]]).decodeParams(AddPortParams.self)
        }
        #expect(throws: RPCError.invalidParams(#""options" must be an object"#)) {
            try request(["bridge": "b", "port": "p", "options": "x"]).decodeParams(AddPortParams.self)
        }
        #expect(throws: RPCError.invalidParams("expected an object")) { try request(["br0"]).decodeParams(BridgeParams.self) }
    }

    @Test func errorCodes() {
        #expect(RPCError.parseError.code == -32700)
        #expect(RPCError.invalidRequest("x").code == -32600)
        #expect(RPCError.methodNotFound("add-flow") == RPCError(code: -32601, message: #"unknown method "add-flow""#))
        #expect(RPCError.invalidParams("x").code == -32602)
        #expect(RPCError.internalError("x").code == -32603)
        #expect(RPCError.noSuchBridge("br9") == RPCError(code: -32001, message: #"no bridge named "br9""#))
        #expect(RPCError.noSuchPort("p") == RPCError(code: -32002, message: #"no port named "p""#))
        #expect(RPCError.noSuchDevice("eth9") == RPCError(code: -32003, message: #"no network device named "eth9""#))
        #expect(RPCError.alreadyExists("m").code == -32004)
        #expect(RPCError.resourceUnavailable("m").code == -32005)
        #expect(RPCError.datapathFailure("m").code == -32010)
        #expect("\(RPCError.noSuchBridge("br9"))" == #"no bridge named "br9""#)
    }

    @Test func methodNames() {
        let names: [ControlMethod: String] = [
            .addBridge: "add-br", .delBridge: "del-br", .addPort: "add-port", .delPort: "del-port", .show: "show",
            .dumpPorts: "dump-ports",
        ]
        for (method, name) in names { #expect(ControlMethod(rawValue: name) == method) }
    }
}

@Suite struct FlowFileRequestTests {
    /// The request written from the file's bytes is the one the file's lines as JSON values give.
    @Test func requestFromBytesEqualsRequestFromLines() throws {
        let files: [[UInt8]] = [
            [], Array("\n".utf8), Array("\n\n".utf8), Array("a".utf8), Array("a\n".utf8), Array("a\r\n".utf8),
            Array("a\n\r".utf8), Array("a\r\nb\r\n\r\n".utf8), Array("\r".utf8),
            Array("priority=1,actions=drop\n# comment \"quoted\" \\ back\n\n  priority=2,ip actions=NORMAL  \n".utf8),
            Array("tab\there\nbell\u{7}\nnul\0x\nél\u{2603}\n".utf8),
            [0x61, 0xff, 0x62, 0x0a, 0xc3, 0x0a, 0xe2, 0x98],  // not UTF-8
        ]
        for file in files {
            for method in ["add-flows", "replace-flows"] {
                let lines = FlowFile.lines(file)
                let expected = RPCCodec.encodeRequest(
                    id: 1, method: method, params: FlowLinesParams(bridge: "br\"0", flows: lines).jsonValue)
                #expect(FlowFile.request(id: 1, method: method, bridge: "br\"0", file: file) == expected, "\(file)")
                // And the daemon reads the lines back.
                guard case .success(let request) = RPCCodec.decodeRequest(expected) else {
                    Issue.record("not a request")
                    continue
                }
                #expect(try FlowLinesParams(from: request.params).flows == lines)
            }
        }
        #expect(FlowFile.lines(Array("a\r\nb\n\nc".utf8)) == ["a", "b", "", "c"])
    }
}
