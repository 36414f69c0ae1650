/// `Codable` straight to and from `JSONValue`, the one JSON model: params are decoded from the
/// value the request parser produced, and reports (and the saved configuration) are encoded into a
/// value that `JSONWriter` writes. No JSON text is made or read in between.
///
/// The semantics are `JSONEncoder`'s and `JSONDecoder`'s (default strategies), as far as vswift's
/// types use them: errors are the same `DecodingError`s with the same coding paths (so
/// `fieldMessage` names the same field), a whole `Double` is encoded as the integer JSONEncoder's
/// text reads back as, a `Float` as its shortest decimal text, and a non-finite number is refused.
/// Not carried over: Foundation's special cases for `Date`, `Data` and `URL` (no type of the
/// protocol or the configuration has one).
///
/// `[String]` (flow lines: a million of them in a big add-flows or saved file) and `JSONValue`
/// itself take a short way, not one coding call per element.
package enum JSONValueDecoder {
    package static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try ValueDecoder(value: value, codingPath: []).decodeValue(type)
    }
}

package enum JSONValueEncoder {
    package static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        try ValueEncoder.encode(value, codingPath: [])
    }
}

/// A key for an array index; `fieldMessage` writes it as `[index]`.
private struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { "Index \(intValue!)" }

    init(_ index: Int) { intValue = index }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { nil }
}

// MARK: - Decoding

private struct ValueDecoder: Decoder, SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch([String: Any].self) }
        return KeyedDecodingContainer(KeyedValueDecoder<Key>(members: members, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = value else { throw mismatch([Any].self) }
        return UnkeyedValueDecoder(elements: elements, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    /// `valueNotFound` for null, else `typeMismatch`: as JSONDecoder reports them.
    func mismatch(_ expected: Any.Type) -> DecodingError {
        let context = DecodingError.Context(codingPath: codingPath, debugDescription: "Expected \(expected), found \(value)")
        return value == .null ? .valueNotFound(expected, context) : .typeMismatch(expected, context)
    }

    func decodeNil() -> Bool { value == .null }

    func decode(_ type: Bool.Type) throws -> Bool {
        guard case .bool(let bool) = value else { throw mismatch(type) }
        return bool
    }

    func decode(_ type: String.Type) throws -> String {
        guard case .string(let string) = value else { throw mismatch(type) }
        return string
    }

    func decode(_ type: Double.Type) throws -> Double {
        switch value {
        case .int(let n): return Double(n)
        case .uint(let n): return Double(n)
        case .double(let d): return d
        default: throw mismatch(type)
        }
    }

    func decode(_ type: Float.Type) throws -> Float {
        let double = try decode(Double.self)
        let float = Float(double)
        guard float.isFinite else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath, debugDescription: "Parsed JSON number <\(double)> does not fit in Float."))
        }
        return float
    }

    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let text: String
        switch value {
        case .int(let n):
            if let exact = T(exactly: n) { return exact }
            text = String(n)
        case .uint(let n):
            if let exact = T(exactly: n) { return exact }
            text = String(n)
        case .double(let d):
            text = String(d)
        default:
            throw mismatch(type)
        }
        throw DecodingError.dataCorrupted(.init(
            codingPath: codingPath, debugDescription: "Parsed JSON number <\(text)> does not fit in \(T.self)."))
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeValue(type) }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        // Same types, so a bit cast: `as!` on an array may check every element when unspecialized.
        if T.self == JSONValue.self { return unsafeBitCast(value, to: T.self) }
        if T.self == [String].self { return unsafeBitCast(try strings(), to: T.self) }
        return try T(from: self)
    }

    /// `[String]` in one loop.
    private func strings() throws -> [String] {
        guard case .array(let elements) = value else { throw mismatch([Any].self) }
        var strings: [String] = []
        strings.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            guard case .string(let string) = element else {
                throw ValueDecoder(value: element, codingPath: codingPath + [IndexKey(index)]).mismatch(String.self)
            }
            strings.append(string)
        }
        return strings
    }
}

private struct KeyedValueDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [String: JSONValue]
    let codingPath: [any CodingKey]

    var allKeys: [Key] { members.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    private func decoder(for key: any CodingKey) throws -> ValueDecoder {
        guard let value = members[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(
                codingPath: codingPath, debugDescription: "No value associated with key \(key.stringValue)"))
        }
        return ValueDecoder(value: value, codingPath: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { try decoder(for: key).decodeNil() }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decoder(for: key).decodeValue(type)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder(for: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try decoder(for: key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        ValueDecoder(value: members["super"] ?? .null, codingPath: codingPath + [SuperKey()])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        ValueDecoder(value: members[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

private struct SuperKey: CodingKey {
    var stringValue: String { "super" }
    var intValue: Int? { nil }
    init() {}
    init?(stringValue: String) { nil }
    init?(intValue: Int) { nil }
}

private struct UnkeyedValueDecoder: UnkeyedDecodingContainer {
    let elements: [JSONValue]
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0

    init(elements: [JSONValue], codingPath: [any CodingKey]) {
        self.elements = elements
        self.codingPath = codingPath
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    /// The next element's decoder; the index moves on only once the element decoded.
    private func next(_ type: Any.Type) throws -> ValueDecoder {
        let path = codingPath + [IndexKey(currentIndex)]
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: path, debugDescription: "Unkeyed container is at end."))
        }
        return ValueDecoder(value: elements[currentIndex], codingPath: path)
    }

    mutating func decodeNil() throws -> Bool {
        let isNull = try next(Never.self).decodeNil()
        if isNull { currentIndex += 1 }
        return isNull
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let decoded = try next(type).decodeValue(type)
        currentIndex += 1
        return decoded
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let container = try next([String: Any].self).container(keyedBy: type)
        currentIndex += 1
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let container = try next([Any].self).unkeyedContainer()
        currentIndex += 1
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        let decoder = try next(Any.self)
        currentIndex += 1
        return decoder
    }
}

// MARK: - Encoding

/// Where an encoded value goes: filled in by `encode(to:)`, read once it returns.
private final class ValueEncoder: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var result: Slot = .empty

    /// A value, or a container still being filled (`encode(to:)` may keep a container and add to
    /// it later, and nested containers write into their parent's).
    enum Slot {
        case empty
        case value(JSONValue)
        case object(ObjectBox)
        case array(ArrayBox)

        var value: JSONValue {
            switch self {
            // JSONEncoder writes {} for a value that encoded nothing.
            case .empty: .object([:])
            case .value(let value): value
            case .object(let box): .object(box.value)
            case .array(let box): .array(box.value)
            }
        }
    }

    /// Members are values as soon as they are encoded; only nested containers and super encoders
    /// (rare) are filled later, and are read when the object is.
    final class ObjectBox {
        var members: [String: JSONValue] = [:]
        var later: [String: ValueEncoder] = [:]

        var value: [String: JSONValue] {
            var all = members
            for (key, encoder) in later { all[key] = encoder.result.value }
            return all
        }

        func set(_ key: String, _ value: JSONValue) {
            members[key] = value
            later[key] = nil
        }

        func set(_ key: String, later encoder: ValueEncoder) {
            members[key] = nil
            later[key] = encoder
        }
    }

    final class ArrayBox {
        var elements: [JSONValue] = []
        var later: [(index: Int, encoder: ValueEncoder)] = []

        var value: [JSONValue] {
            var all = elements
            for (index, encoder) in later { all[index] = encoder.result.value }
            return all
        }

        func append(later encoder: ValueEncoder) {
            later.append((elements.count, encoder))
            elements.append(.null)
        }
    }

    init(codingPath: [any CodingKey]) {
        self.codingPath = codingPath
    }

    static func encode<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> JSONValue {
        // Same types, so a bit cast: `as!` on an array may check every element when unspecialized.
        if T.self == JSONValue.self { return unsafeBitCast(value, to: JSONValue.self) }
        if T.self == [String].self { return .array(unsafeBitCast(value, to: [String].self).map(JSONValue.string)) }
        let encoder = ValueEncoder(codingPath: codingPath)
        try value.encode(to: encoder)
        return encoder.result.value
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let box: ObjectBox
        if case .object(let existing) = result {
            box = existing
        } else {
            box = ObjectBox()
            result = .object(box)
        }
        return KeyedEncodingContainer(KeyedValueEncoder<Key>(box: box, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let box: ArrayBox
        if case .array(let existing) = result {
            box = existing
        } else {
            box = ArrayBox()
            result = .array(box)
        }
        return UnkeyedValueEncoder(box: box, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueEncoder(encoder: self)
    }

    /// A number as JSONEncoder writes it and `JSONParser` reads it back: a whole `Double` in
    /// `Int64`'s range is an integer, a `Float` its shortest decimal text.
    static func number(_ double: Double, codingPath: [any CodingKey]) throws -> JSONValue {
        guard double.isFinite else {
            throw EncodingError.invalidValue(double, .init(
                codingPath: codingPath, debugDescription: "Unable to encode Double.\(double) directly in JSON."))
        }
        if double == double.rounded(), double >= -0x1p63, double < 0x1p63 { return .int(Int64(double)) }
        return .double(double)
    }

    static func integer<T: FixedWidthInteger>(_ n: T) -> JSONValue {
        if let signed = Int64(exactly: n) { return .int(signed) }
        return .uint(UInt64(n))
    }
}

private struct SingleValueEncoder: SingleValueEncodingContainer {
    let encoder: ValueEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    private func set(_ value: JSONValue) { encoder.result = .value(value) }

    func encodeNil() { set(.null) }
    func encode(_ value: Bool) { set(.bool(value)) }
    func encode(_ value: String) { set(.string(value)) }
    func encode(_ value: Double) throws { set(try ValueEncoder.number(value, codingPath: codingPath)) }
    func encode(_ value: Float) throws {
        set(try ValueEncoder.number(value.isFinite ? Double("\(value)")! : Double(value), codingPath: codingPath))
    }
    func encode(_ value: Int) { set(ValueEncoder.integer(value)) }
    func encode(_ value: Int8) { set(ValueEncoder.integer(value)) }
    func encode(_ value: Int16) { set(ValueEncoder.integer(value)) }
    func encode(_ value: Int32) { set(ValueEncoder.integer(value)) }
    func encode(_ value: Int64) { set(ValueEncoder.integer(value)) }
    func encode(_ value: UInt) { set(ValueEncoder.integer(value)) }
    func encode(_ value: UInt8) { set(ValueEncoder.integer(value)) }
    func encode(_ value: UInt16) { set(ValueEncoder.integer(value)) }
    func encode(_ value: UInt32) { set(ValueEncoder.integer(value)) }
    func encode(_ value: UInt64) { set(ValueEncoder.integer(value)) }
    func encode<T: Encodable>(_ value: T) throws { set(try ValueEncoder.encode(value, codingPath: codingPath)) }
}

private struct KeyedValueEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let box: ValueEncoder.ObjectBox
    let codingPath: [any CodingKey]

    private func set(_ value: JSONValue, _ key: Key) { box.set(key.stringValue, value) }

    mutating func encodeNil(forKey key: Key) { set(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) { set(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) { set(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws {
        set(try ValueEncoder.number(value, codingPath: codingPath + [key]), key)
    }
    mutating func encode(_ value: Float, forKey key: Key) throws {
        let single = SingleValueEncoder(encoder: ValueEncoder(codingPath: codingPath + [key]))
        try single.encode(value)
        box.set(key.stringValue, single.encoder.result.value)
    }
    mutating func encode(_ value: Int, forKey key: Key) { set(ValueEncoder.integer(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) { set(ValueEncoder.integer(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) { set(ValueEncoder.integer(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) { set(ValueEncoder.integer(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) { set(ValueEncoder.integer(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) { set(ValueEncoder.integer(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) { set(ValueEncoder.integer(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) { set(ValueEncoder.integer(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) { set(ValueEncoder.integer(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) { set(ValueEncoder.integer(value), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        set(try ValueEncoder.encode(value, codingPath: codingPath + [key]), key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let nested = ValueEncoder(codingPath: codingPath + [key])
        box.set(key.stringValue, later: nested)
        return nested.container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = ValueEncoder(codingPath: codingPath + [key])
        box.set(key.stringValue, later: nested)
        return nested.unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let nested = ValueEncoder(codingPath: codingPath + [SuperKey()])
        box.set("super", later: nested)
        return nested
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let nested = ValueEncoder(codingPath: codingPath + [key])
        box.set(key.stringValue, later: nested)
        return nested
    }
}

private struct UnkeyedValueEncoder: UnkeyedEncodingContainer {
    let box: ValueEncoder.ArrayBox
    let codingPath: [any CodingKey]
    var count: Int { box.elements.count }

    private var nextPath: [any CodingKey] { codingPath + [IndexKey(count)] }
    private func append(_ value: JSONValue) { box.elements.append(value) }

    mutating func encodeNil() { append(.null) }
    mutating func encode(_ value: Bool) { append(.bool(value)) }
    mutating func encode(_ value: String) { append(.string(value)) }
    mutating func encode(_ value: Double) throws { append(try ValueEncoder.number(value, codingPath: nextPath)) }
    mutating func encode(_ value: Float) throws {
        let single = SingleValueEncoder(encoder: ValueEncoder(codingPath: nextPath))
        try single.encode(value)
        box.elements.append(single.encoder.result.value)
    }
    mutating func encode(_ value: Int) { append(ValueEncoder.integer(value)) }
    mutating func encode(_ value: Int8) { append(ValueEncoder.integer(value)) }
    mutating func encode(_ value: Int16) { append(ValueEncoder.integer(value)) }
    mutating func encode(_ value: Int32) { append(ValueEncoder.integer(value)) }
    mutating func encode(_ value: Int64) { append(ValueEncoder.integer(value)) }
    mutating func encode(_ value: UInt) { append(ValueEncoder.integer(value)) }
    mutating func encode(_ value: UInt8) { append(ValueEncoder.integer(value)) }
    mutating func encode(_ value: UInt16) { append(ValueEncoder.integer(value)) }
    mutating func encode(_ value: UInt32) { append(ValueEncoder.integer(value)) }
    mutating func encode(_ value: UInt64) { append(ValueEncoder.integer(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws { append(try ValueEncoder.encode(value, codingPath: nextPath)) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let nested = ValueEncoder(codingPath: nextPath)
        box.append(later: nested)
        return nested.container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = ValueEncoder(codingPath: nextPath)
        box.append(later: nested)
        return nested.unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let nested = ValueEncoder(codingPath: nextPath)
        box.append(later: nested)
        return nested
    }
}
