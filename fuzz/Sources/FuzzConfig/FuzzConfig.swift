import Foundation
import Glibc
import VSwiftProtocol

/// libFuzzer target: vswiftd's configuration loader (`ConfigStore.decode`, the parse behind
/// `ConfigStore.load`) and journal loader (`ConfigJournal.load`, which reads a file: the input is
/// written to a scratch file on tmpfs). The input is a db file or a journal. Checks: errors are
/// thrown, never traps; a configuration that loads is written by `ConfigStore.encode` as text that
/// loads to the same configuration; journal records that load write lines that load again the same.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    if let config = try? ConfigStore.decode(bytes) {
        let text: [UInt8]
        let again: SwitchConfig
        do {
            text = try ConfigStore.encode(config)
        } catch {
            preconditionFailure("a loaded configuration does not encode: \(error)")
        }
        do {
            again = try ConfigStore.decode(Data(text))
        } catch {
            preconditionFailure("saved configuration does not load: \(error)\n\(String(decoding: text, as: UTF8.self))")
        }
        precondition(again == config, "save/load changed the configuration")
    }

    // The journal names the generation it continues: load with the header's, so records are read.
    let journal = ConfigJournal(path: scratchPath)
    guard bytes.withUnsafeBytes({ write(to: scratchPath, $0) }) else { return 0 }
    var generation: UInt64 = 0
    if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")),
       case .object(let header)? = JSONValue.parse(bytes[..<newline]) {
        switch header["generation"] {
        case .int(let n)? where n >= 0: generation = UInt64(n)
        case .uint(let n)?: generation = n
        default: break
        }
    }
    guard let records = try? journal.load(generation: generation), !records.isEmpty else { return 0 }
    var rewritten = JSONValue.object(["generation": .uint(generation)]).jsonText() + [UInt8(ascii: "\n")]
    for record in records { rewritten += record.line }
    guard rewritten.withUnsafeBytes({ write(to: scratchPath, $0) }) else { return 0 }
    let reloaded = try? journal.load(generation: generation)
    precondition(reloaded == records, "journal records do not load again the same")
    return 0
}

/// A per-process file on tmpfs (fuzzing with -jobs runs several processes).
private let scratchPath: String = {
    let directory = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return "\(directory)/vswift-fuzz-config-\(getpid()).journal"
}()

private func write(to path: String, _ buffer: UnsafeRawBufferPointer) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var done = 0
    while done < buffer.count {
        let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
        if n < 0 { if errno == EINTR { continue }; return false }
        done += n
    }
    return true
}
