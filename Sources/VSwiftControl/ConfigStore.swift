import Foundation
import SystemPackage
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
    /// The LISP control configuration (LISPConfigSection.swift); nil (and absent from the file) when empty.
    public var lisp: LISPSavedConfig?

    public static let currentVersion = 1

    public init(
        systemID: String, bridges: [BridgeConfig] = [], underlays: [String] = [], generation: UInt64 = 0, lisp: LISPSavedConfig? = nil
    ) {
        self.version = Self.currentVersion
        self.systemID = systemID
        self.bridges = bridges
        self.underlays = underlays
        self.generation = generation
        self.lisp = lisp
    }

    private enum CodingKeys: String, CodingKey { case version, systemID, bridges, underlays, generation, lisp }

    /// Files written before underlays (or the journal, or LISP control) existed have no `underlays`
    /// (`generation`, `lisp`) key.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        systemID = try c.decode(String.self, forKey: .systemID)
        bridges = try c.decode([BridgeConfig].self, forKey: .bridges)
        underlays = try c.decodeIfPresent([String].self, forKey: .underlays) ?? []
        generation = try c.decodeIfPresent(UInt64.self, forKey: .generation) ?? 0
        lisp = try c.decodeIfPresent(LISPSavedConfig.self, forKey: .lisp)
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
        do throws(FieldError) {
            config = try Self.decode(data)
        } catch {
            throw ConfigStoreError(path: path, problem: "not a vswiftd configuration: \(error.message)")
        }
        guard config.version == SwitchConfig.currentVersion else {
            throw ConfigStoreError(
                path: path, problem: "format version \(config.version) is not supported (this vswiftd reads version \(SwitchConfig.currentVersion))")
        }
        return config
    }

    /// The configuration in `data`: parsed by `JSONParser`, then decoded straight from the value
    /// (the flows, a million strings maybe, in one loop: see `JSONValueDecoder`).
    static func decode(_ data: Data) throws(FieldError) -> SwitchConfig {
        guard let value = JSONValue.parse(data) else { throw FieldError(message: "not valid JSON") }
        return try value.decoded(as: SwitchConfig.self)
    }

    /// Replaces the file with `config`, atomically (see the type's description), then deletes the
    /// journal, whose changes `config` contains (`config.generation` must be new: a journal that
    /// outlives a crash here is then ignored). Creates the directory (mode 0755) when missing; the
    /// file itself is mode 0600. The text is streamed to the file in chunks, never held whole.
    /// Returns the file's size.
    @discardableResult
    public func save(_ config: SwitchConfig) throws(ConfigStoreError) -> Int {
        let value: JSONValue
        do {
            value = try JSONValue(encoding: config)
        } catch {
            throw ConfigStoreError(path: path, problem: "cannot encode: \(error)")
        }
        var size = 0
        try write { emit in
            Self.encode(value, chunkSize: 1 << 20) { chunk in
                size += chunk.count
                return emit(chunk)
            }
        }
        journal.remove()
        return size
    }

    /// Pretty JSON with sorted keys, one flow per line: the configuration as a value (its
    /// `Codable` encoding), as `JSONWriter` writes every reply, and a final newline.
    static func encode(_ config: SwitchConfig) throws(RPCError) -> [UInt8] {
        var all: [UInt8] = []
        encode(try JSONValue(encoding: config), chunkSize: Int.max) { chunk in
            all.append(contentsOf: chunk)
            return true
        }
        return all
    }

    /// The text of `encode(_:)` for the configuration's value, handed to `emit` in pieces of about
    /// `chunkSize` bytes; stops early when `emit` returns false.
    @discardableResult
    static func encode(_ value: JSONValue, chunkSize: Int, emit: ([UInt8]) -> Bool) -> Bool {
        JSONWriter.stream(value, pretty: true, newline: true, chunkSize: chunkSize, emit: emit)
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
        let file = try createTemporary(temporary)
        var writeError: ConfigStoreError?
        produce { bytes in
            guard writeError == nil else { return false }
            do {
                _ = try file.writeAll(bytes)  // retried on EINTR and short writes
            } catch {
                writeError = failure("cannot write \(temporary)", error)
                return false
            }
            return true
        }
        do throws(ConfigStoreError) {
            if let writeError { throw writeError }
            do throws(Errno) { try file.sync() } catch { throw failure("cannot fsync \(temporary)", error) }
        } catch {
            try? file.close()
            try? FilePath(temporary).unlink()
            throw error
        }
        try? file.close()
        do throws(Errno) {
            try FilePath(temporary).rename(to: FilePath(path))
        } catch {
            try? FilePath(temporary).unlink()
            throw failure("cannot rename \(temporary) to \(path)", error)
        }
        // The rename is durable only once the directory is.
        try Self.syncDirectory(of: path)
    }

    /// Creates `temporary` afresh: never through a symlink or into a file someone put there
    /// (`O_EXCL|O_NOFOLLOW`), so a name planted in the directory cannot redirect the write. What
    /// is there already (a file left by a crash, or a planted name) is removed first; `unlink`
    /// removes a symlink itself, never its target.
    private func createTemporary(_ temporary: String) throws(ConfigStoreError) -> FileDescriptor {
        var lastError = Errno.noSuchFileOrDirectory
        for attempt in 0..<2 {
            do {
                return try FileDescriptor.open(
                    FilePath(temporary), .writeOnly, options: [.create, .exclusiveCreate, .noFollow, .closeOnExec],
                    permissions: [.ownerReadWrite])
            } catch {
                lastError = error as? Errno ?? .ioError
            }
            guard lastError == .fileExists, attempt == 0 else { break }
            do throws(Errno) {
                try FilePath(temporary).unlink()
            } catch {
                guard error == .noSuchFileOrDirectory else {
                    lastError = error
                    break
                }
            }
        }
        throw failure("cannot create \(temporary)", lastError)
    }

    /// Refuses (see `SafeDirectory`) a directory others could use to redirect the configuration's
    /// files, or such files that are not vswiftd's own. vswiftd calls it before reading anything.
    public func checkDirectory() throws(SafePathError) {
        try SafeDirectory.check(SafeDirectory.directory(of: path), files: [
            (SafeDirectory.name(of: path), .regular), (SafeDirectory.name(of: temporaryPath), .regular),
            (SafeDirectory.name(of: journal.path), .regular),
        ])
    }

    /// fsyncs the directory holding `path`, making a rename or a new name there durable.
    static func syncDirectory(of path: String) throws(ConfigStoreError) {
        let directory = (path as NSString).deletingLastPathComponent
        let directoryFile: FileDescriptor
        do {
            directoryFile = try FileDescriptor.open(
                FilePath(directory.isEmpty ? "." : directory), .readOnly, options: [.directory, .closeOnExec])
        } catch {
            throw ConfigStoreError(path: path, problem: "cannot open directory \(directory): \(error)")
        }
        defer { try? directoryFile.close() }
        do throws(Errno) {
            try directoryFile.sync()
        } catch {
            throw ConfigStoreError(path: path, problem: "cannot fsync directory \(directory): \(error)")
        }
    }

    /// `what` failed with `error` (an `Errno`, whose description is strerror's text).
    private func failure(_ what: String, _ error: any Error) -> ConfigStoreError {
        ConfigStoreError(path: path, problem: "\(what): \(error)")
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? CocoaError, let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError,
            underlying.domain == NSPOSIXErrorDomain
        {
            return Errno(rawValue: Int32(underlying.code)).description
        }
        return error.localizedDescription
    }
}
