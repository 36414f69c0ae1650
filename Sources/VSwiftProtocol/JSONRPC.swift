import Foundation

// JSON-RPC 2.0 (https://www.jsonrpc.org/specification) as vswiftd speaks it on its control socket:
// one request or response per line, UTF-8, terminated by "\n". Batches are not supported.
// A request without an "id" member is a notification: the server runs it and sends no response.

/// Any JSON value.
///
/// Integers stay integers: a whole number that fits in `Int64` decodes as `.int`, one above
/// `Int64.max` as `.uint`, so 64-bit counters survive a round trip exactly (a `Double` holds only
/// 53 bits). Every other number is `.double`.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    /// Only for values above `Int64.max`; smaller ones decode as `.int`.
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(UInt64.self) {
            self = .uint(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .uint(let value): try container.encode(value)
        // JSON has no NaN or infinity; like JavaScript's JSON.stringify, write them as null.
        case .double(let value) where !value.isFinite: try container.encodeNil()
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONValue: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue {
    /// Converts any `Encodable` (a report, a params struct) into a JSON value, directly (see
    /// `JSONValueEncoder`).
    public init<T: Encodable>(encoding value: T) throws(RPCError) {
        do {
            self = try JSONValueEncoder.encode(value)
        } catch {
            throw .internalError("cannot encode \(T.self): \(error)")
        }
    }

    /// Decodes method params into `T`. A mismatch is `invalidParams` naming the field, e.g.
    /// `invalid params: missing "bridge"` or `invalid params: "port" must be a string`.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws(RPCError) -> T {
        do throws(FieldError) {
            return try decoded(as: type)
        } catch {
            throw .invalidParams(error.message)
        }
    }

    /// Decodes straight from the value (see `JSONValueDecoder`), with JSONDecoder's semantics.
    package func decoded<T: Decodable>(as type: T.Type) throws(FieldError) -> T {
        do {
            return try JSONValueDecoder.decode(type, from: self)
        } catch let error as DecodingError {
            throw FieldError(message: error.fieldMessage)
        } catch {
            throw FieldError(message: "\(error)")
        }
    }

    /// Parses one JSON text; nil when it is not valid JSON. (Linear in the size of the text: see
    /// `JSONParser`.)
    package static func parse(_ bytes: some Collection<UInt8>) -> JSONValue? {
        JSONParser.parse(bytes)
    }

    /// JSON text with object keys sorted. Compact (one line) unless `pretty`, which indents by two
    /// spaces. Cannot fail: every `JSONValue` has a JSON text (see `JSONWriter`).
    public func jsonText(pretty: Bool = false) -> [UInt8] {
        var writer = JSONWriter(pretty: pretty)
        writer.write(self)
        return writer.out
    }
}

/// Why a JSON value did not decode into a type, naming the field.
package struct FieldError: Error {
    package let message: String

    package init(message: String) {
        self.message = message
    }
}

extension DecodingError {
    /// `missing "bridge"`, `"port" must be a string`, `"options.remote_ip" must be a string`.
    package var fieldMessage: String {
        switch self {
        case .keyNotFound(let key, let context):
            return "missing \(Self.describe(context.codingPath + [key]))"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            let expected = Self.describe(type)
            return context.codingPath.isEmpty
                ? "expected \(expected)" : "\(Self.describe(context.codingPath)) must be \(expected)"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty
                ? context.debugDescription : "\(Self.describe(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(self)"
        }
    }

    /// `"options.remote_ip"`, `"ports[2].name"`.
    private static func describe(_ path: [any CodingKey]) -> String {
        let text = path.reduce(into: "") { text, key in
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return "\"\(text)\""
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is any FixedWidthInteger.Type: return "an integer"
        case is any BinaryFloatingPoint.Type: return "a number"
        case is [String: Any].Type: return "an object"
        case is [Any].Type: return "an array"
        default: return "a \(type)"
        }
    }
}

/// A JSON-RPC error object. `message` is a sentence for a person; `vswiftctl` prints it as is.
public struct RPCError: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { message }

    // Codes defined by JSON-RPC 2.0.
    public static let parseError = RPCError(code: -32700, message: "parse error: the request is not valid JSON")
    public static func invalidRequest(_ detail: String) -> RPCError {
        RPCError(code: -32600, message: "invalid request: \(detail)")
    }
    public static func methodNotFound(_ method: String) -> RPCError {
        RPCError(code: -32601, message: "unknown method \"\(method)\"")
    }
    public static func invalidParams(_ detail: String) -> RPCError {
        RPCError(code: -32602, message: "invalid params: \(detail)")
    }
    public static func internalError(_ detail: String) -> RPCError {
        RPCError(code: -32603, message: "internal error: \(detail)")
    }
    /// Flow text that does not parse: an invalid-params error whose message is the parser's, as is
    /// (`line 3: bad value …` for a line of a flow file), with `data` saying where.
    public static func invalidFlow(_ message: String, data: JSONValue? = nil) -> RPCError {
        RPCError(code: -32602, message: message, data: data)
    }

    // vswift's own codes (the spec leaves -32000…-32099 to the server).
    public static func noSuchBridge(_ name: String) -> RPCError {
        RPCError(code: -32001, message: "no bridge named \"\(name)\"")
    }
    public static func noSuchPort(_ name: String) -> RPCError {
        RPCError(code: -32002, message: "no port named \"\(name)\"")
    }
    public static func noSuchDevice(_ name: String) -> RPCError {
        RPCError(code: -32003, message: "no network device named \"\(name)\"")
    }
    /// `message` names what exists, e.g. `a bridge named "br0" already exists`.
    public static func alreadyExists(_ message: String) -> RPCError { RPCError(code: -32004, message: message) }
    public static func resourceUnavailable(_ message: String) -> RPCError { RPCError(code: -32005, message: message) }
    public static func datapathFailure(_ message: String) -> RPCError { RPCError(code: -32010, message: message) }

    var jsonValue: JSONValue {
        var members: [String: JSONValue] = ["code": .int(Int64(code)), "message": .string(message)]
        members["data"] = data
        return .object(members)
    }
}

public struct RPCRequest: Sendable, Equatable {
    /// nil for a notification (no "id" member), which gets no response; `.null` is a (discouraged) null id.
    public var id: JSONValue?
    /// The id exactly as the client wrote it, which the response repeats (JSON-RPC 2.0: the
    /// response's id "MUST be the same as the value of the id member in the Request"); `id` alone
    /// cannot hold e.g. 123456789012345678901234567890. Not part of equality: it is the same id.
    public var idText: [UInt8]?
    public var method: String
    /// An object or an array when present.
    public var params: JSONValue?

    public init(id: JSONValue?, method: String, params: JSONValue? = nil, idText: [UInt8]? = nil) {
        self.id = id
        self.method = method
        self.params = params
        self.idText = idText
    }

    public static func == (a: RPCRequest, b: RPCRequest) -> Bool {
        a.id == b.id && a.method == b.method && a.params == b.params
    }

    /// Decodes by-name params; absent params decode like `{}`, so a required field is reported missing.
    public func decodeParams<T: Decodable>(_ type: T.Type = T.self) throws(RPCError) -> T {
        try (params ?? .object([:])).decode(type)
    }
}

/// A request that could not be accepted, with its id when one was readable (else the response's id is null).
public struct RPCRequestError: Error, Sendable, Equatable {
    public var id: JSONValue?
    public var error: RPCError
    /// As `RPCRequest.idText`; not part of equality.
    public var idText: [UInt8]?

    public init(id: JSONValue?, error: RPCError, idText: [UInt8]? = nil) {
        self.id = id
        self.error = error
        self.idText = idText
    }

    public static func == (a: RPCRequestError, b: RPCRequestError) -> Bool {
        a.id == b.id && a.error == b.error
    }
}

/// Encoding and decoding of the line protocol. Every encoded message is one line ending in "\n".
public enum RPCCodec {
    public static func decodeRequest(_ line: some Collection<UInt8>) -> Result<RPCRequest, RPCRequestError> {
        guard let (message, idText) = JSONParser.parseRecordingID(line) else {
            return .failure(RPCRequestError(id: nil, error: .parseError))
        }
        guard case .object(let members) = message else {
            return .failure(RPCRequestError(id: nil, error: .invalidRequest("the request must be a JSON object")))
        }
        let id = members["id"]
        switch id {
        case nil, .null, .int, .uint, .double, .string: break
        case .bool, .array, .object:
            return .failure(
                RPCRequestError(id: nil, error: .invalidRequest("\"id\" must be a string, a number or null")))
        }
        func invalid(_ detail: String) -> Result<RPCRequest, RPCRequestError> {
            .failure(RPCRequestError(id: id, error: .invalidRequest(detail), idText: idText))
        }
        guard members["jsonrpc"] == .string("2.0") else { return invalid("\"jsonrpc\" must be \"2.0\"") }
        guard case .string(let method) = members["method"] else { return invalid("\"method\" must be a string") }
        let params = members["params"]
        switch params {
        case nil, .array, .object: break
        default: return invalid("\"params\" must be an object or an array")
        }
        return .success(RPCRequest(id: id, method: method, params: params, idText: idText))
    }

    /// A response: `result` on success, `error` on failure, never both; a nil id is written as null.
    /// `idText`, the id as the request wrote it (already checked to be one JSON value), is
    /// written in place of `id` when given.
    public static func encodeResponse(
        id: JSONValue?, idText: [UInt8]? = nil, result: Result<JSONValue, RPCError>
    ) -> [UInt8] {
        guard let idText else {
            var members: [String: JSONValue] = ["jsonrpc": "2.0", "id": id ?? .null]
            switch result {
            case .success(let value): members["result"] = value
            case .failure(let error): members["error"] = error.jsonValue
            }
            return line(.object(members))
        }
        var out = Array(#"{"jsonrpc":"2.0","id":"#.utf8)
        out.append(contentsOf: idText)
        switch result {
        case .success(let value):
            out.append(contentsOf: #","result":"#.utf8)
            out.append(contentsOf: value.jsonText())
        case .failure(let error):
            out.append(contentsOf: #","error":"#.utf8)
            out.append(contentsOf: error.jsonValue.jsonText())
        }
        out.append(contentsOf: "}\n".utf8)
        return out
    }

    public static func encodeRequest(id: Int, method: String, params: JSONValue?) -> [UInt8] {
        var members: [String: JSONValue] = ["jsonrpc": "2.0", "id": .int(Int64(id)), "method": .string(method)]
        members["params"] = params
        return line(.object(members))
    }

    /// Reads a response line. Throws `parseError` (with a message saying what is wrong) when it is not
    /// a JSON-RPC 2.0 response at all.
    public static func decodeResponse(_ line: some Collection<UInt8>) throws(RPCError) -> Result<JSONValue, RPCError> {
        func invalid(_ detail: String) -> RPCError {
            RPCError(code: RPCError.parseError.code, message: "invalid response: \(detail)")
        }
        guard let message = JSONValue.parse(line) else { throw invalid("not valid JSON") }
        guard case .object(let members) = message, members["jsonrpc"] == .string("2.0") else {
            throw invalid("not a JSON-RPC 2.0 response")
        }
        switch (members["result"], members["error"]) {
        case (let result?, nil):
            return .success(result)
        case (nil, let error?):
            do throws(FieldError) {
                return .failure(try error.decoded(as: RPCError.self))
            } catch {
                throw invalid("error object: \(error.message)")
            }
        default:
            throw invalid("it must have exactly one of \"result\" and \"error\"")
        }
    }

    private static func line(_ message: JSONValue) -> [UInt8] {
        message.jsonText() + [UInt8(ascii: "\n")]
    }
}
