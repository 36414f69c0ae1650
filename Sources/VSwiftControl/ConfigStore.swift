import Foundation
import Glibc
import VSwiftProtocol

/// vswiftd's saved configuration: what a restart must bring back.
///
/// Flows are kept in ovs-ofctl syntax, cookie and timeouts included, so the file can be read (and,
/// with the daemon stopped, edited) by a person: as the line of the flow file (or of the saved
/// file) that installed the flow, comment and surrounding blanks cut, when that line names no
/// port; else as `FlowFormatter.flow` writes it. Counters, durations and the
/// time a flow was installed are not kept: after a restart they start again, hard timeouts too.
public struct SwitchConfig: Codable, Sendable, Equatable {
    /// Format version of the file.
    public var version: Int
    public var systemID: String
    /// In creation order.
    public var bridges: [BridgeConfig]
    /// Devices attached in underlay mode (add-underlay), in order of addition.
    public var underlays: [String]
    /// Counts the files written: the journal (`ConfigJournal`) names the generation it continues.
    public var generation: UInt64

    public static let currentVersion = 1

    public init(systemID: String, bridges: [BridgeConfig] = [], underlays: [String] = [], generation: UInt64 = 0) {
        self.version = Self.currentVersion
        self.systemID = systemID
        self.bridges = bridges
        self.underlays = underlays
        self.generation = generation
    }

    private enum CodingKeys: String, CodingKey { case version, systemID, bridges, underlays, generation }

    /// Files written before underlays (or the journal) existed have no `underlays` (`generation`) key.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        systemID = try c.decode(String.self, forKey: .systemID)
        bridges = try c.decode([BridgeConfig].self, forKey: .bridges)
        underlays = try c.decodeIfPresent([String].self, forKey: .underlays) ?? []
        generation = try c.decodeIfPresent(UInt64.self, forKey: .generation) ?? 0
    }
}

public struct BridgeConfig: Codable, Sendable, Equatable {
    public var name: String
    /// The number the next added port gets (numbers are never reused while the bridge exists).
    public var nextOfport: UInt32
    /// In port-number order, without the internal port (which every bridge has).
    public var ports: [PortConfig]
    /// In dump-flows order (priority descending, then installation order).
    public var flows: [String]

    public init(name: String, nextOfport: UInt32, ports: [PortConfig], flows: [String]) {
        self.name = name
        self.nextOfport = nextOfport
        self.ports = ports
        self.flows = flows
    }
}

public struct PortConfig: Codable, Sendable, Equatable {
    public var name: String
    public var ofport: UInt32
    /// OVS interface type; "" for a system device.
    public var type: String
    public var options: [String: String]

    public init(name: String, ofport: UInt32, type: String = "", options: [String: String] = [:]) {
        self.name = name
        self.ofport = ofport
        self.type = type
        self.options = options
    }
}

public struct ConfigStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var problem: String

    public var description: String { "\(path): \(problem)" }
}

/// The configuration file, written atomically: the new contents go to `PATH.tmp`, which is
/// fsync'ed and renamed over `PATH`, then the directory is fsync'ed. A crash at any moment leaves
/// either the old file or the new one, never a mix; a `PATH.tmp` left behind by a crash is ignored.
public struct ConfigStore: Sendable {
    public let path: String

    public static let defaultPath = "/var/lib/vswift/vswiftd.db.json"

    public init(path: String) {
        self.path = path
    }

    /// `$VSWIFT_DB` when set and not empty, else `defaultPath`.
    public static func defaultPath(environment: [String: String]) -> String {
        if let path = environment["VSWIFT_DB"], !path.isEmpty { return path }
        return defaultPath
    }

    var temporaryPath: String { path + ".tmp" }

    /// The flow changes made since the file was last written (`PATH.journal`).
    public var journal: ConfigJournal { ConfigJournal(path: path + ".journal") }

    /// The saved configuration; nil when there is no file yet (a first start). A file that cannot
    /// be read or understood is an error, never an empty configuration.
    public func load() throws(ConfigStoreError) -> SwitchConfig? {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return nil
        } catch {
            throw ConfigStoreError(path: path, problem: "cannot read: \(Self.describe(error))")
        }
        let config: SwitchConfig
        do {
            config = try Self.decode(data)
        } catch let error as DecodingError {
            throw ConfigStoreError(path: path, problem: "not a vswiftd configuration: \(error.fieldMessage)")
        } catch let error as FieldError {
            throw ConfigStoreError(path: path, problem: "not a vswiftd configuration: \(error.message)")
        } catch {
            throw ConfigStoreError(path: path, problem: "not a vswiftd configuration: \(error)")
        }
        guard config.version == SwitchConfig.currentVersion else {
            throw ConfigStoreError(
                path: path, problem: "format version \(config.version) is not supported (this vswiftd reads version \(SwitchConfig.currentVersion))")
        }
        return config
    }

    /// The configuration in `data`. The flows (a million strings, maybe) are taken out of the
    /// parsed text by hand; Foundation's decoder, which takes some ten times as long for them,
    /// reads the rest and names what is wrong there.
    static func decode(_ data: Data) throws -> SwitchConfig {
        guard case .object(var members)? = JSONValue.parse(data), case .array(var bridges)? = members["bridges"] else {
            return try JSONDecoder().decode(SwitchConfig.self, from: data)
        }
        var flowsOfBridge: [[String]?] = []
        for index in bridges.indices {
            guard case .object(var bridge) = bridges[index], case .array(let items)? = bridge["flows"] else {
                flowsOfBridge.append(nil)
                continue
            }
            var flows: [String] = []
            flows.reserveCapacity(items.count)
            for (f, item) in items.enumerated() {
                guard case .string(let flow) = item else {
                    throw FieldError(message: "\"bridges[\(index)].flows[\(f)]\" must be a string")
                }
                flows.append(flow)
            }
            flowsOfBridge.append(flows)
            bridge["flows"] = .array([])
            bridges[index] = .object(bridge)
        }
        members["bridges"] = .array(bridges)
        var config = try JSONDecoder().decode(SwitchConfig.self, from: Data(JSONValue.object(members).jsonText()))
        for (index, flows) in flowsOfBridge.enumerated() where flows != nil {
            config.bridges[index].flows = flows!
        }
        return config
    }

    /// Replaces the file with `config`, atomically (see the type's description), then deletes the
    /// journal, whose changes `config` contains (`config.generation` must be new: a journal that
    /// outlives a crash here is then ignored). Creates the directory (mode 0755) when missing; the
    /// file itself is mode 0600. The text is streamed to the file in chunks, never held whole.
    /// Returns the file's size.
    @discardableResult
    public func save(_ config: SwitchConfig) throws(ConfigStoreError) -> Int {
        var size = 0
        try write { emit in
            Self.encode(config, chunkSize: 1 << 20) { chunk in
                size += chunk.count
                return emit(chunk)
            }
        }
        journal.remove()
        return size
    }

    /// Pretty JSON with sorted keys, one flow per line.
    static func encode(_ config: SwitchConfig) -> [UInt8] {
        var all: [UInt8] = []
        encode(config, chunkSize: Int.max) { chunk in
            all.append(contentsOf: chunk)
            return true
        }
        return all
    }

    /// The text of `encode(_:)`, handed to `emit` in pieces of about `chunkSize` bytes; stops early
    /// when `emit` returns false. The same text `JSONValue.jsonText(pretty: true)` gives for the
    /// configuration as an object, written directly (no value tree for a million flows).
    @discardableResult
    static func encode(_ config: SwitchConfig, chunkSize: Int, emit: ([UInt8]) -> Bool) -> Bool {
        var out: [UInt8] = []
        out.reserveCapacity(min(chunkSize, 1 << 20) + 4096)
        var failed = false
        func flush(force: Bool = false) {
            guard !failed, force || out.count >= chunkSize else { return }
            if !out.isEmpty && !emit(out) { failed = true }
            out.removeAll(keepingCapacity: true)
        }
        func text(_ string: String) { out.append(contentsOf: string.utf8) }
        func newline(_ indent: Int) {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: indent))
        }
        func key(_ name: String, _ indent: Int) {
            newline(indent)
            JSONValue.writeString(name, to: &out)
            text(": ")
        }
        text("{")
        key("bridges", 2)
        if config.bridges.isEmpty {
            text("[]")
        } else {
            text("[")
            for (b, bridge) in config.bridges.enumerated() {
                if b > 0 { text(",") }
                newline(4)
                text("{")
                key("flows", 6)
                if bridge.flows.isEmpty {
                    text("[]")
                } else {
                    text("[")
                    for (f, flow) in bridge.flows.enumerated() {
                        if f > 0 { text(",") }
                        newline(8)
                        JSONValue.writeString(flow, to: &out)
                        flush()
                        if failed { return false }
                    }
                    newline(6)
                    text("]")
                }
                text(",")
                key("name", 6)
                JSONValue.writeString(bridge.name, to: &out)
                text(",")
                key("nextOfport", 6)
                text(String(bridge.nextOfport))
                text(",")
                key("ports", 6)
                if bridge.ports.isEmpty {
                    text("[]")
                } else {
                    text("[")
                    for (p, port) in bridge.ports.enumerated() {
                        if p > 0 { text(",") }
                        newline(8)
                        text("{")
                        key("name", 10)
                        JSONValue.writeString(port.name, to: &out)
                        text(",")
                        key("ofport", 10)
                        text(String(port.ofport))
                        text(",")
                        key("options", 10)
                        if port.options.isEmpty {
                            text("{}")
                        } else {
                            text("{")
                            for (o, option) in port.options.sorted(by: { $0.key < $1.key }).enumerated() {
                                if o > 0 { text(",") }
                                key(option.key, 12)
                                JSONValue.writeString(option.value, to: &out)
                            }
                            newline(10)
                            text("}")
                        }
                        text(",")
                        key("type", 10)
                        JSONValue.writeString(port.type, to: &out)
                        newline(8)
                        text("}")
                    }
                    newline(6)
                    text("]")
                }
                newline(4)
                text("}")
            }
            newline(2)
            text("]")
        }
        text(",")
        key("generation", 2)
        text(String(config.generation))
        text(",")
        key("systemID", 2)
        JSONValue.writeString(config.systemID, to: &out)
        text(",")
        key("underlays", 2)
        text("[")
        for (u, name) in config.underlays.enumerated() {
            if u > 0 { text(", ") }
            JSONValue.writeString(name, to: &out)
        }
        text("]")
        text(",")
        key("version", 2)
        text(String(config.version))
        newline(0)
        text("}\n")
        flush(force: true)
        return !failed
    }

    func write(_ bytes: [UInt8]) throws(ConfigStoreError) {
        try write { emit in _ = emit(bytes) }
    }

    /// Writes what `produce` emits to `PATH.tmp`, fsyncs it, renames it over `PATH` and fsyncs the
    /// directory. `emit` returns false once a write failed (the rest is then not written).
    func write(_ produce: (_ emit: ([UInt8]) -> Bool) -> Void) throws(ConfigStoreError) {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            } catch {
                throw ConfigStoreError(path: path, problem: "cannot create directory \(directory): \(Self.describe(error))")
            }
        }
        let temporary = temporaryPath
        let fd = try createTemporary(temporary)
        var writeError: ConfigStoreError?
        produce { bytes in
            guard writeError == nil else { return false }
            var written = 0
            while written < bytes.count {
                let count = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if count < 0 {
                    if errno == EINTR { continue }
                    writeError = failure("cannot write \(temporary)")
                    return false
                }
                written += count
            }
            return true
        }
        if let writeError {
            close(fd)
            unlink(temporary)
            throw writeError
        }
        guard fsync(fd) == 0 else {
            let error = failure("cannot fsync \(temporary)")
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = failure("cannot rename \(temporary) to \(path)")
            unlink(temporary)
            throw error
        }
        // The rename is durable only once the directory is.
        try Self.syncDirectory(of: path)
    }

    /// Creates `temporary` afresh: never through a symlink or into a file someone put there
    /// (`O_EXCL|O_NOFOLLOW`), so a name planted in the directory cannot redirect the write. What
    /// is there already (a file left by a crash, or a planted name) is removed first; `unlink`
    /// removes a symlink itself, never its target.
    private func createTemporary(_ temporary: String) throws(ConfigStoreError) -> Int32 {
        for attempt in 0..<2 {
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 { return fd }
            guard errno == EEXIST, attempt == 0 else { break }
            guard unlink(temporary) == 0 || errno == ENOENT else { break }
        }
        throw failure("cannot create \(temporary)")
    }

    /// Refuses (see `SafeDirectory`) a directory others could use to redirect the configuration's
    /// files, or such files that are not vswiftd's own. vswiftd calls it before reading anything.
    public func checkDirectory() throws(SafePathError) {
        try SafeDirectory.check(SafeDirectory.directory(of: path), files: [
            (SafeDirectory.name(of: path), S_IFREG), (SafeDirectory.name(of: temporaryPath), S_IFREG),
            (SafeDirectory.name(of: journal.path), S_IFREG),
        ])
    }

    /// fsyncs the directory holding `path`, making a rename or a new name there durable.
    static func syncDirectory(of path: String) throws(ConfigStoreError) {
        let directory = (path as NSString).deletingLastPathComponent
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryFD >= 0 else {
            throw ConfigStoreError(path: path, problem: "cannot open directory \(directory): \(String(cString: strerror(errno)))")
        }
        defer { close(directoryFD) }
        guard fsync(directoryFD) == 0 else {
            throw ConfigStoreError(path: path, problem: "cannot fsync directory \(directory): \(String(cString: strerror(errno)))")
        }
    }

    private func failure(_ what: String) -> ConfigStoreError {
        ConfigStoreError(path: path, problem: "\(what): \(String(cString: strerror(errno)))")
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? CocoaError, let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError,
            underlying.domain == NSPOSIXErrorDomain
        {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return error.localizedDescription
    }
}
