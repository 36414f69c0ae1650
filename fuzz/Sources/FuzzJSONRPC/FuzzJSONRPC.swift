/// libFuzzer target: the control socket's JSON-RPC decoding (`JSONParser` via `JSONValue.parse`,
/// `RPCCodec.decodeRequest`, `RPCCodec.decodeResponse`). The input is one request line. Checks:
/// bad input is an error, never a trap; any JSON value that parses is written by `jsonText` (and
/// `jsonText(pretty:)`) as text that parses to the same value; the response to a decoded request
/// carries the request's id back unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = UnsafeBufferPointer(start: data, count: size)
    _ = try? RPCCodec.decodeResponse(line)
    if let value = JSONValue.parse(line) {
        for pretty in [false, true] {
            let text = value.jsonText(pretty: pretty)
            precondition(JSONValue.parse(text) == value,
                         "JSON round trip changed the value: \(String(decoding: text, as: UTF8.self))")
        }
    }
    switch RPCCodec.decodeRequest(line) {
    case .success(let request):
        let response = RPCCodec.encodeResponse(id: request.id, result: .success(.null))
        guard case .object(let members)? = JSONValue.parse(response.dropLast()) else {
            preconditionFailure("response is not a JSON object")
        }
        precondition(members["id"] == (request.id ?? .null), "response id differs from the request id")
    case .failure(let failure):
        _ = RPCCodec.encodeResponse(id: failure.id, result: .failure(failure.error))
    }
    return 0
}
