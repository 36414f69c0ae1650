import CXDP
import Foundation
import Glibc

// Programs and network namespaces for the tests that need a kernel (integration tests, netlink
// tests): one copy, so a fix to how a child is read or a namespace entered reaches them all.

public struct CommandResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// A command that exited non-zero, or a system call of the test support that failed (`status` is
/// then its errno).
public struct CommandFailed: Error, CustomStringConvertible {
    public let command: [String]
    public let result: CommandResult
    public var description: String {
        "`\(command.joined(separator: " "))` exited \(result.status): \(result.stderr)\(result.stdout)"
    }

    public init(command: [String], result: CommandResult) {
        self.command = command
        self.result = result
    }

    /// `operation` failed with `errno` (read now).
    public static func system(_ operation: [String]) -> CommandFailed {
        let code = errno
        return CommandFailed(command: operation, result: CommandResult(status: code, stdout: "", stderr: String(cString: strerror(code))))
    }
}

/// Runs a program to completion and captures its output. A name without a slash is looked up in PATH.
@discardableResult
public func run(_ arguments: [String], environment: [String: String] = [:], check: Bool = true) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: arguments[0].hasPrefix("/") ? arguments[0] : "/usr/bin/env")
    process.arguments = arguments[0].hasPrefix("/") ? Array(arguments.dropFirst()) : arguments
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes before waiting so a chatty child cannot block on a full pipe.
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let result = CommandResult(
        status: process.terminationStatus,
        stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
    if check && result.status != 0 { throw CommandFailed(command: arguments, result: result) }
    return result
}

/// Runs `body` on a fresh thread that has entered network namespace `name` (as made by `ip netns
/// add`). Sockets and devices created there belong to that namespace for good, so they may be used
/// after `body` returns. Errors thrown by `body` pass through unchanged.
public func inNamespace<T>(_ name: String, _ body: @escaping () throws -> T) throws -> T {
    let task = NamespaceTask(name, body)
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        defer { done.signal() }
        let fd = open("/run/netns/\(task.name)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0, vs_enter_netns(fd) == 0 else {
            task.result = .failure(CommandFailed.system(["setns", task.name]))
            if fd >= 0 { close(fd) }
            return
        }
        close(fd)
        task.result = Result { try task.body() }
    }
    thread.start()
    done.wait()
    return try task.result!.get()
}

// @unchecked Sendable: handed to one thread that runs `body` and sets `result` before it signals;
// the caller reads `result` only after waiting for that signal.
private final class NamespaceTask<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
    let body: () throws -> T
    let name: String
    init(_ name: String, _ body: @escaping () throws -> T) {
        self.name = name
        self.body = body
    }
}
