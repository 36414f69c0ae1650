import Foundation
import Glibc
import Logging
import NIOCore
import Testing
import VSwiftMetrics
import VSwiftTesting

/// The endpoint on a real TCP socket (loopback, an ephemeral port), with hostile clients.
@Suite("Metrics server")
struct MetricsServerTests {
    static let body = Array("# HELP x_total X.\n# TYPE x_total counter\nx_total 1\n".utf8)

    func withServer(_ limits: MetricsServer.Limits = MetricsServer.Limits(), _ body: (Int) throws -> Void) throws {
        let server = MetricsServer(host: "127.0.0.1", port: 0, limits: limits, logger: Logger(label: "test")) { Self.body }
        try server.start()
        defer { server.stop() }
        try body(try #require(server.boundPort))
    }

    @Test("GET /metrics answers 200 with the rendered text and Prometheus' content type, then closes")
    func scrape() throws {
        try withServer { port in
            let answer = try httpGet(port: port, path: "/metrics")
            #expect(answer.status == 200)
            #expect(answer.body == String(decoding: Self.body, as: UTF8.self))
            #expect(answer.response.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"))
            #expect(answer.response.contains("Connection: close"))
            // A query string (Prometheus may add one) is ignored.
            #expect(try httpGet(port: port, path: "/metrics?x=1").status == 200)
        }
    }

    @Test("other paths are 404, other methods 405; garbage is a 400, never a crash")
    func refusals() throws {
        try withServer { port in
            #expect(try httpGet(port: port, path: "/").status == 404)
            #expect(try httpGet(port: port, path: "/metrics/../etc").status == 404)
            let post = try httpExchange(port: port, request: Array("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".utf8))
            #expect(post.status == 405)
            #expect(post.response.contains("Allow: GET"))
            let garbage = try httpExchange(port: port, request: Array("\u{1}\u{2}\u{3} nonsense\r\n\r\n".utf8), timeout: 5)
            #expect(garbage.status == 400 || garbage.status == 0)
            // Still serving.
            #expect(try httpGet(port: port, path: "/metrics").status == 200)
        }
    }

    @Test("a request over the size limit is cut off without an answer")
    func oversizedRequest() throws {
        var limits = MetricsServer.Limits()
        limits.maxRequestBytes = 4096
        try withServer(limits) { port in
            let huge = "GET /metrics HTTP/1.1\r\nX-Padding: " + String(repeating: "a", count: 64 << 10) + "\r\n\r\n"
            let answer = try httpExchange(port: port, request: Array(huge.utf8), timeout: 5)
            #expect(answer.status == 0, "\(answer.response.prefix(200))")
            #expect(try httpGet(port: port, path: "/metrics").status == 200)
        }
    }

    @Test("a client that never finishes its request is disconnected at the deadline")
    func slowClient() throws {
        var limits = MetricsServer.Limits()
        limits.requestTimeout = .milliseconds(300)
        try withServer(limits) { port in
            let started = Date()
            let answer = try httpExchange(port: port, request: Array("GET /metrics HTTP/1.1\r\n".utf8), timeout: 5)
            #expect(answer.status == 0)
            #expect(Date().timeIntervalSince(started) < 3, "not cut off at the deadline")
        }
    }

    @Test("connections beyond the cap are closed at once; the others are still answered")
    func connectionCap() throws {
        var limits = MetricsServer.Limits()
        limits.maxConnections = 2
        limits.requestTimeout = .seconds(5)
        try withServer(limits) { port in
            let held = try (0..<2).map { _ in try tcpConnect(port: port, timeout: 5) }
            defer { held.forEach { close($0) } }
            usleep(200_000)
            // The third is accepted by the kernel and closed by the server without an answer.
            let refused = try httpGet(port: port, path: "/metrics", timeout: 3)
            #expect(refused.status == 0)
            // A held connection can still make its request.
            let request = Array("GET /metrics HTTP/1.1\r\n\r\n".utf8)
            _ = request.withUnsafeBytes { send(held[0], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { recv(held[0], $0.baseAddress, $0.count, 0) }
            #expect(n > 0 && String(decoding: buffer[0..<max(0, n)], as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        }
    }
}
