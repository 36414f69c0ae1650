import ArgumentParser
import Foundation
import Synchronization
import SystemPackage
import VSwiftProtocol

/// Set by SIGINT/SIGTERM while a capture runs: the loop stops at its next turn.
private let captureInterrupted = Atomic<Bool>(false)

struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Capture the frames a port receives and sends (pcapng), as the datapath sees them.",
        usage: "vswiftctl capture [<bridge>] <port> [--direction rx|tx|both] [-c N] [-w FILE.pcapng|-] [--snaplen N]",
        discussion: """
            A LISP port's frames are the bridge's side (after decapsulation, before encapsulation); \
            the outer LISP packets are on the underlay port's capture. With -w - the pcapng stream \
            goes to standard output, flushed after every batch: vswiftctl capture br2 vnet0 -w - | \
            tshark -r -. Without -w, one line per frame. Ends after -c frames, on Ctrl-C, or when the \
            port is deleted; frames the capture could not keep up with are counted as dropped \
            (never slowing forwarding) and reported at the end and in the file's statistics block.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: .hidden) var names: [String] = []

    /// The protocol's `CaptureDirectionName`, as an argument.
    enum Direction: String, ExpressibleByArgument, CaseIterable {
        case rx, tx, both
        var name: CaptureDirectionName { CaptureDirectionName(rawValue: rawValue) ?? .both }
    }

    @Option(help: "rx, tx or both.")
    var direction: Direction = .both

    @Option(name: .customShort("c"), help: "Stop after this many frames.")
    var count: Int?

    @Option(name: .customShort("w"), help: "Write pcapng to this file; - for standard output.")
    var file: String?

    @Option(help: "Bytes kept of each frame (at most vswiftd's frame size).")
    var snaplen: Int = CaptureLimits.defaultSnapLength

    func validate() throws {
        guard (1...2).contains(names.count) else { throw ValidationError("expected [<bridge>] <port>") }
        if let count { guard count > 0 else { throw ValidationError("-c must be 1 or more") } }
        guard (1...65535).contains(snaplen) else { throw ValidationError("--snaplen must be 1 to 65535") }
    }

    func run() throws {
        // A parent may have left them blocked (the mask survives exec): Ctrl-C must reach us.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        sigprocmask(SIG_UNBLOCK, &signals, nil)
        signal(SIGINT) { _ in captureInterrupted.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in captureInterrupted.store(true, ordering: .relaxed) }
        // A reader that goes away (tshark quit) is a write error, not a signal that kills us.
        signal(SIGPIPE, SIG_IGN)
        let params = CaptureStartParams(
            bridge: names.count == 2 ? names[0] : nil, port: names[names.count - 1], direction: direction.name, snapLength: snaplen)
        let started = try global.fetch(.captureStart, JSONValue(encoding: params)).decode(CaptureStartReply.self)
        let sink: CaptureSink
        do {
            sink = try CaptureSink(file: file, start: started, direction: direction.name)
        } catch {
            _ = try? global.fetch(.captureStop, JSONValue(encoding: CaptureSessionParams(id: started.id)))
            throw error
        }

        var captured = 0
        var dropped: UInt64 = 0
        var ended: String?
        var writeFailed = false
        let startTime = Self.now()
        while !captureInterrupted.load(ordering: .relaxed) {
            let wanted = min(count.map { $0 - captured } ?? CaptureLimits.maxFramesPerRead, CaptureLimits.maxFramesPerRead)
            let reply = try global.fetch(.captureRead, JSONValue(encoding: CaptureSessionParams(id: started.id, maxFrames: wanted)))
                .decode(CaptureReadReply.self)
            dropped = reply.dropped
            let frames = reply.frames.prefix(wanted)
            if !frames.isEmpty {
                do {
                    try sink.write(frames)
                } catch {
                    writeFailed = true
                    break
                }
                captured += frames.count
            }
            if let reason = reply.ended {
                ended = reason
                break
            }
            if let count, captured >= count { break }
            // Nothing waiting: ask again shortly (a signal cuts the wait short).
            if reply.frames.isEmpty { usleep(20_000) }
        }
        if ended == nil, let stop = try? global.fetch(.captureStop, JSONValue(encoding: CaptureSessionParams(id: started.id)))
            .decode(CaptureStopReply.self) {
            dropped = stop.dropped
        }
        if !writeFailed {
            try? sink.finish(start: startTime, end: Self.now(), dropped: dropped, delivered: UInt64(captured))
        }
        sink.close()
        if let ended { FileHandle.standardError.write(Data("capture ended: \(ended)\n".utf8)) }
        FileHandle.standardError.write(Data("\(captured) frames captured, \(dropped) dropped by the capture\n".utf8))
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// Where captured frames go: a pcapng file or standard output (`-w`), or one line per frame.
struct CaptureSink {
    private let fd: FileDescriptor
    private let ownsFD: Bool
    private let pcapng: Bool

    init(file: String?, start: CaptureStartReply, direction: CaptureDirectionName) throws {
        switch file {
        case nil:
            (fd, ownsFD, pcapng) = (.standardOutput, false, false)
            return
        case "-":
            (fd, ownsFD, pcapng) = (.standardOutput, false, true)
        case let path?:
            let opened = try FileDescriptor.open(
                FilePath(path), .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: [.ownerReadWrite, .groupRead, .otherRead])
            (fd, ownsFD, pcapng) = (opened, true, true)
        }
        let where_ = start.bridge.map { "bridge \($0), port \(start.port)" } ?? "underlay device \(start.port)"
        try put(PcapNG.sectionHeader(application: "vswiftctl capture")
            + PcapNG.interfaceDescription(name: start.port, description: "vswift \(where_), \(direction.rawValue)", snapLength: UInt32(start.snapLength)))
    }

    /// One batch, written with one call (and so flushed: nothing is buffered here).
    func write(_ frames: some Collection<CaptureFrameReport>) throws {
        var bytes: [UInt8] = []
        for frame in frames {
            let data = frame.bytes ?? []
            if pcapng {
                bytes += PcapNG.enhancedPacket(
                    interface: 0, timestamp: frame.timestamp, originalLength: frame.length, data: data,
                    direction: frame.direction == .tx ? .outbound : .inbound)
            } else {
                bytes += Array((Self.summary(frame, data) + "\n").utf8)
            }
        }
        try put(bytes)
    }

    /// The statistics block (pcapng only).
    func finish(start: UInt64, end: UInt64, dropped: UInt64, delivered: UInt64) throws {
        guard pcapng else { return }
        try put(PcapNG.interfaceStatistics(interface: 0, timestamp: end, start: start, end: end, dropped: dropped, delivered: delivered))
    }

    func close() {
        if ownsFD { try? fd.close() }
    }

    private func put(_ bytes: [UInt8]) throws {
        _ = try fd.writeAll(bytes)  // retried on EINTR and short writes
    }

    /// `12:00:01.123456789 rx 98 bytes 02:00:00:00:00:01 > 02:00:00:00:00:02, type 0x0800` (UTC)
    static func summary(_ frame: CaptureFrameReport, _ data: [UInt8]) -> String {
        func digits(_ value: UInt64, _ width: Int, radix: Int = 10) -> String {
            let text = String(value, radix: radix)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let seconds = frame.timestamp / 1_000_000_000 % 86_400
        var line = "\(digits(seconds / 3600, 2)):\(digits(seconds / 60 % 60, 2)):\(digits(seconds % 60, 2))."
            + "\(digits(frame.timestamp % 1_000_000_000, 9)) \(frame.direction.rawValue) \(frame.length) bytes"
        if data.count >= 14 {
            func mac(_ at: Int) -> String { data[at..<at + 6].map { digits(UInt64($0), 2, radix: 16) }.joined(separator: ":") }
            line += " \(mac(6)) > \(mac(0)), type 0x" + digits(UInt64(data[12]) << 8 | UInt64(data[13]), 4, radix: 16)
        }
        return line
    }
}
