import CEquicastShims

/// Readiness events for `Poller`.
public struct PollEvents: Equatable, Sendable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    public static let readable = PollEvents(rawValue: Int16(POLLIN))
    public static let writable = PollEvents(rawValue: Int16(POLLOUT))
    /// Error or hang-up: always reported, never requested.
    public static let failed = PollEvents(rawValue: Int16(POLLERR | POLLHUP | POLLNVAL))

    public func contains(_ other: PollEvents) -> Bool { rawValue & other.rawValue != 0 }
    public static func | (a: PollEvents, b: PollEvents) -> PollEvents { PollEvents(rawValue: a.rawValue | b.rawValue) }
}

/// A thin `poll(2)` wrapper: the daemon's single wait point. One thread, no epoll: a device agent watches a
/// handful of descriptors, where poll is as fast and portable to every libc.
public struct Poller {
    private var fds: [pollfd] = []

    public init() {}

    /// Replaces the watched set.
    public mutating func watch(_ entries: [(fd: Int32, events: PollEvents)]) {
        fds = entries.map { pollfd(fd: $0.fd, events: $0.events.rawValue, revents: 0) }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and returns the descriptors with events. EINTR returns
    /// an empty list so the caller can handle the signal and re-arm.
    public mutating func wait(timeoutMilliseconds: Int32) throws(PosixError) -> [(fd: Int32, events: PollEvents)] {
        let n = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) }
        if n < 0 {
            let code = equicast_errno()
            if code == EINTR { return [] }
            throw .syscall(name: "poll", errno: code)
        }
        var ready: [(fd: Int32, events: PollEvents)] = []
        for entry in fds where entry.revents != 0 {
            ready.append((entry.fd, PollEvents(rawValue: entry.revents)))
        }
        return ready
    }
}

/// The monotonic clock, in nanoseconds since an arbitrary start; drivers read it and pass `now` into the core.
public enum MonotonicClock {
    public static func nanoseconds() -> UInt64 { equicast_monotonic_ns() }
    public static func milliseconds() -> UInt64 { equicast_monotonic_ns() / 1_000_000 }
}
