import CXDP
import Foundation
import Glibc
import Synchronization
import VSwiftDatapath

/// What can stop a benchmark, each saying what failed.
enum BenchError: Error, CustomStringConvertible {
    case failed(String)
    case interrupted

    var description: String {
        switch self {
        case .failed(let what): return what
        case .interrupted: return "interrupted"
        }
    }
}

/// Errno as text.
func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

// MARK: Signals

/// Set by SIGINT/SIGTERM; every wait in the bench checks it, so teardown runs on the main thread.
/// An atomic (lock-free, so safe to store from a signal handler).
let stopSignal = Atomic<Int32>(0)

enum Signals {
    static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { signal in stopSignal.store(signal, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    static var stopRequested: Bool { stopSignal.load(ordering: .relaxed) != 0 }

    /// Sleeps `seconds`, waking every 20 ms to honour SIGINT/SIGTERM.
    static func sleep(_ seconds: Double) throws(BenchError) {
        let deadline = monotonicSeconds() + seconds
        while true {
            if stopRequested { throw .interrupted }
            let left = deadline - monotonicSeconds()
            if left <= 0 { return }
            usleep(useconds_t(min(left, 0.02) * 1_000_000))
        }
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

// MARK: Threads and network namespaces

/// Runs closures on threads of their own, optionally inside a network namespace.
///
/// The network namespace is a per-thread attribute: `setns(CLONE_NEWNET)` on one thread moves only
/// that thread, and threads it creates inherit it. So everything that resolves an interface name or
/// index in a namespace (if_nametoindex, bpf_link_create, BPF_PROG_RUN's ingress_ifindex, AF_XDP
/// bind, creating a tap) is done from a thread that entered the namespace first.
enum Threads {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Starts a joinable thread running `body`.
    static func start(_ body: @escaping () -> Void) throws(BenchError) -> pthread_t {
        let box = Unmanaged.passRetained(Box(body))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw .failed("pthread_create: \(errnoText(rc))")
        }
        return thread
    }

    /// Runs `body` on a new thread that first entered network namespace `namespace`; waits for it.
    static func run<T>(inNamespace namespace: String, _ body: @escaping () throws -> T) throws -> T {
        var result: Result<T, Error> = .failure(BenchError.failed("thread did not run"))
        let thread = try start {
            do {
                try NetworkNamespace.enter(namespace)
                result = .success(try body())
            } catch {
                result = .failure(error)
            }
        }
        pthread_join(thread, nil)
        return try result.get()
    }
}

enum NetworkNamespace {
    private typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    private static let cloneNewNet: Int32 = 0x4000_0000
    /// Glibc's setns is not in Swift's Glibc module; it is looked up once.
    private static let setnsFunction: SetNS? = dlsym(nil, "setns").map { unsafeBitCast($0, to: SetNS.self) }

    /// Moves the calling thread into the named namespace (`ip netns add NAME`).
    static func enter(_ name: String) throws(BenchError) {
        guard let setns = setnsFunction else { throw .failed("setns is not available") }
        let fd = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .failed("open /run/netns/\(name): \(errnoText())") }
        defer { close(fd) }
        guard setns(fd, cloneNewNet) == 0 else { throw .failed("setns into \(name): \(errnoText())") }
    }
}

/// Pins the calling thread to one CPU.
func pinCurrentThread(to cpu: Int) throws(BenchError) {
    let rc = vs_pin_to_cpu(Int32(cpu))
    guard rc == 0 else { throw .failed("pin thread to CPU \(cpu): \(errnoText(-rc))") }
}

// MARK: Commands

/// Runs a command to completion; throws with its stderr if it fails.
@discardableResult
func runCommand(_ argv: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0])
    process.arguments = Array(argv.dropFirst())
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    do {
        try process.run()
    } catch {
        throw BenchError.failed("cannot run \(argv[0]): \(error)")
    }
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationReason == .exit, process.terminationStatus == 0 else {
        let text = String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        throw BenchError.failed("`\(argv.joined(separator: " "))` failed: \(text)")
    }
    return String(decoding: output, as: UTF8.self)
}

/// Finds a program in the usual system directories.
func systemTool(_ name: String) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = "\(dir)/\(name)"
        if access(path, X_OK) == 0 { return path }
    }
    return name
}

// MARK: Files

func readTextFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        data.append(contentsOf: buffer[0..<n])
    }
    return String(decoding: data, as: UTF8.self)
}

/// The directory of the running executable.
func executableDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return "." }
    let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return String(path[..<slash])
}

func formatMACAddress(_ mac: [UInt8]) -> String {
    mac.map { String(format: "%02x", $0) }.joined(separator: ":")
}

/// The ifindex and MAC of `device` in the calling thread's namespace (through NetworkDevice).
func deviceIdentity(_ device: String, namespace: String) throws -> (ifindex: UInt32, mac: [UInt8]) {
    guard let found = try? NetworkDevice(name: device) else { throw BenchError.failed("no device \(device) in \(namespace)") }
    guard let mac = found.macAddress else { throw BenchError.failed("cannot read the MAC of \(device)") }
    return (found.ifindex, mac)
}
