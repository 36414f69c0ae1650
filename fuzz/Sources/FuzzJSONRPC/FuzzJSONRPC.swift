import VSwiftProtocol

/// libFuzzer target: the control socket's JSON-RPC decoding (`JSONParser` via `JSONValue.parse`,
/// `RPCCodec.decodeRequest`, `RPCCodec.decodeResponse`). The input is one request line. Checks:
/// bad input is an error, never a trap; any JSON value that parses is written by `jsonText` (and
/// `jsonText(pretty:)`) as text that parses to the same value; the response to a decoded request
/// carries the request's id back unchanged. Numbers compare by value: a number's case may change
/// on the way (`-9223372036854775809` reads as `.double(-2^63)`, which is written as
/// `-9.223372036854776e+18` and read back as `.int(-2^63)`), its value may not. (Returning ids
/// verbatim, digits and all, is issue 13's defect 9, not checked here.)
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = UnsafeBufferPointer(start: data, count: size)
    _ = try? RPCCodec.decodeResponse(line)
    if let value = JSONValue.parse(line) {
        for pretty in [false, true] {
            let text = value.jsonText(pretty: pretty)
            precondition(JSONValue.parse(text).map { sameJSON($0, value) } ?? false,
                         "JSON round trip changed the value: \(String(decoding: text, as: UTF8.self))")
        }
    }
    switch RPCCodec.decodeRequest(line) {
    case .success(let request):
        let response = RPCCodec.encodeResponse(id: request.id, result: .success(.null))
        guard case .object(let members)? = JSONValue.parse(response.dropLast()) else {
            preconditionFailure("response is not a JSON object")
        }
        precondition(sameJSON(members["id"] ?? .null, request.id ?? .null), "response id differs from the request id")
    case .failure(let failure):
        _ = RPCCodec.encodeResponse(id: failure.id, result: .failure(failure.error))
    }
    return 0
}

/// Equal JSON values, numbers compared by value whatever their case.
func sameJSON(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.array(let x), .array(let y)):
        return x.count == y.count && zip(x, y).allSatisfy { sameJSON($0, $1) }
    case (.object(let x), .object(let y)):
        return x.count == y.count && x.allSatisfy { key, value in y[key].map { sameJSON(value, $0) } ?? false }
    case (.int(let i), .double(let d)), (.double(let d), .int(let i)):
        return Int64(exactly: d) == i
    case (.uint(let u), .double(let d)), (.double(let d), .uint(let u)):
        return UInt64(exactly: d) == u
    case (.int(let i), .uint(let u)), (.uint(let u), .int(let i)):
        return i >= 0 && UInt64(i) == u
    default:
        return a == b
    }
}
