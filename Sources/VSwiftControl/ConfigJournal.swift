import Foundation
import SystemPackage
import VSwiftProtocol

/// The flow changes made since the configuration file was last written: one JSON-RPC request per
/// line (`{"method":…,"params":…}`), appended and fsync'ed before the change is acknowledged, so a
/// small change to a big table costs one short write instead of rewriting the whole file.
///
/// The first line names the generation of the configuration file the journal continues
/// (`{"generation":N}`). A new configuration file carries a new generation, so a journal left
/// behind by a crash between writing the file and removing the journal no longer matches and is
/// ignored (its changes are in the file). A last line without its newline is a record whose append
/// was cut short by a crash: its request was never acknowledged, and it is ignored.
public struct ConfigJournal: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// One change as a request that replays it.
    public struct Record: Equatable, Sendable {
        public var method: String
        public var params: JSONValue

        public init(method: String, params: JSONValue) {
            self.method = method
            self.params = params
        }

        /// The record's line, newline included.
        public var line: [UInt8] {
            var out = JSONValue.object(["method": .string(method), "params": params]).jsonText()
            out.append(UInt8(ascii: "\n"))
            return out
        }
    }

    /// The records that continue configuration file generation `generation`, in order; empty when
    /// there is no journal or it belongs to another generation. A line in the middle that is not
    /// a record is an error: the file was damaged, and dropping it would lose changes silently.
    public func load(generation: UInt64) throws(ConfigStoreError) -> [Record] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return []
        } catch {
            throw ConfigStoreError(path: path, problem: "cannot read: \(error.localizedDescription)")
        }
        let bytes = [UInt8](data)
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        // The piece after the last newline: empty, or a record cut short by a crash.
        lines.removeLast()
        guard let header = lines.first else { return [] }
        guard case .object(let members) = JSONValue.parse(header) ?? .null,
            case let headerGeneration?? = members["generation"].map({ value -> UInt64? in
                switch value {
                case .int(let n) where n >= 0: UInt64(n)
                case .uint(let n): n
                default: nil
                }
            })
        else {
            throw ConfigStoreError(path: path, problem: "line 1 is not a journal header")
        }
        guard headerGeneration == generation else { return [] }
        var records: [Record] = []
        for (number, line) in lines.enumerated().dropFirst() {
            guard case .object(let members) = JSONValue.parse(line) ?? .null, case .string(let method)? = members["method"],
                let params = members["params"]
            else {
                throw ConfigStoreError(path: path, problem: "line \(number + 1) is not a journal record")
            }
            records.append(Record(method: method, params: params))
        }
        return records
    }

    /// Appends `record` and makes it durable; starts the journal (for `generation`) when there is
    /// none. Returns the bytes written. On failure the journal is cut back to where it was.
    @discardableResult
    public func append(_ record: Record, generation: UInt64) throws(ConfigStoreError) -> Int {
        try append(line: record.line, generation: generation)
    }

    /// `append(_:generation:)` with the record's line already made (`Record.line`).
    @discardableResult
    public func append(line: [UInt8], generation: UInt64) throws(ConfigStoreError) -> Int {
        // Never through a symlink, and only into a file of vswiftd's own with no other name: a
        // name planted in the directory must not make root append to another file.
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(
                FilePath(path), .writeOnly, options: [.create, .noFollow, .closeOnExec], permissions: [.ownerReadWrite])
        } catch {
            throw failure("cannot open", error)
        }
        defer { try? file.close() }
        let status: Stat
        do throws(Errno) { status = try file.stat() } catch { throw failure("cannot inspect", error) }
        do throws(SafePathError) {
            try SafeDirectory.check(status, path: path, type: .regular)
        } catch {
            throw ConfigStoreError(path: path, problem: error.problem)
        }
        let end: Int64
        do { end = try file.seek(offset: 0, from: .end) } catch { throw failure("cannot seek", error) }
        var bytes: [UInt8] = []
        if end == 0 {
            bytes = JSONValue.object(["generation": .uint(generation)]).jsonText()
            bytes.append(UInt8(ascii: "\n"))
        }
        bytes += line
        do {
            _ = try file.writeAll(bytes)  // retried on EINTR and short writes
        } catch {
            let failed = failure("cannot write", error)
            try? file.resize(to: end)
            throw failed
        }
        do throws(Errno) {
            try file.syncData()
        } catch {
            let failed = failure("cannot fsync", error)
            try? file.resize(to: end)
            throw failed
        }
        // A new journal's name must be durable too.
        if end == 0 { try ConfigStore.syncDirectory(of: path) }
        return bytes.count
    }

    /// Cuts the journal back to `size` bytes (what it held before an append whose change was then
    /// not made), deleting it when that is 0. Never through a symlink.
    public func cut(to size: Int) throws(ConfigStoreError) {
        guard size > 0 else {
            do throws(Errno) {
                try FilePath(path).unlink()
            } catch {
                guard error == .noSuchFileOrDirectory else { throw failure("cannot remove", error) }
            }
            return
        }
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.noFollow, .closeOnExec])
        } catch {
            throw failure("cannot open", error)
        }
        defer { try? file.close() }
        do { try file.resize(to: Int64(size)) } catch { throw failure("cannot truncate", error) }
        do throws(Errno) { try file.syncData() } catch { throw failure("cannot fsync", error) }
    }

    /// Deletes the journal (after a configuration file that contains its changes was written).
    public func remove() {
        try? FilePath(path).unlink()
    }

    /// `what` failed with `error` (an `Errno`, whose description is strerror's text).
    private func failure(_ what: String, _ error: any Error) -> ConfigStoreError {
        ConfigStoreError(path: path, problem: "\(what): \(error)")
    }
}
