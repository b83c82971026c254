// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Vfio.Core.Interop;

namespace Vfio.Core;

/// <summary>
/// Hands file descriptors from a management layer (a privileged launcher, libvirt, a device plugin) to a worker:
/// named fds over a Unix socket with <c>SCM_RIGHTS</c>, and fds inherited by number.
/// </summary>
/// <remarks>
/// <para>
/// One message carries up to 253 fds (<c>SCM_MAX_FD</c>), each with a name. The frame is
/// <c>"VFD1"</c>, a little-endian u32 body length, then the body: a u16 count and, per fd, a u16 name length and
/// the UTF-8 name; the fds ride on the frame's first byte. Received fds are close-on-exec
/// (<c>MSG_CMSG_CLOEXEC</c>); a truncated control message (<c>MSG_CTRUNC</c>) or a count that does not match the
/// names is an error, and every fd that did arrive is closed.
/// </para>
/// <para>
/// Received fds are owned by the receiver. An fd received or inherited is not trusted: check it with
/// <see cref="VfioFdValidator"/> before use.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// // Launcher (privileged):
/// FdPassing.Send(socket, [new NamedFd("iommufd", iommufd), new NamedFd("0000:00:02.0", cdev)]);
/// // Worker (unprivileged):
/// using ReceivedFds fds = await FdPassing.ReceiveAsync(socket, cancellationToken);
/// SafeFileHandle iommufd = fds.Take("iommufd");
/// VfioFdValidator.Expect(LinuxKernel.Instance, iommufd, VfioFdKind.IommuFd, "iommufd");
/// </code>
/// </example>
public static class FdPassing
{
    private const uint Magic = 0x31444656; // "VFD1" little-endian
    private const int HeaderSize = 8;
    private const int MaxNameBytes = 255;
    private const int MaxBodySize = 2 + (Libc.SCM_MAX_FD * (2 + MaxNameBytes));

    /// <summary>The most fds one message may carry.</summary>
    public const int MaxFdsPerMessage = Libc.SCM_MAX_FD;

    /// <summary>Sends <paramref name="fds"/> in one message. The caller keeps owning them.</summary>
    /// <param name="socket">A connected Unix stream or seqpacket socket.</param>
    /// <param name="fds">1–253 named fds with unique names.</param>
    /// <exception cref="ArgumentException">No fds, too many, an empty, over-long or repeated name, or a closed handle.</exception>
    /// <exception cref="VfioException">The kernel refused the message.</exception>
    public static void Send(Socket socket, IReadOnlyList<NamedFd> fds)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(fds);
        CheckSocket(socket);
        byte[] frame = EncodeFrame(fds);
        var added = new bool[fds.Count];
        try
        {
            Span<int> numbers = fds.Count <= 64 ? stackalloc int[fds.Count] : new int[fds.Count];
            for (int i = 0; i < fds.Count; i++)
            {
                fds[i].Handle.DangerousAddRef(ref added[i]);
                numbers[i] = (int)fds[i].Handle.DangerousGetHandle();
            }
            int sent = SendWithRights(socket.SafeHandle, frame, numbers);
            // A stream socket may take part of the frame; the fds went with the first byte.
            while (sent < frame.Length)
            {
                sent += SendWithRights(socket.SafeHandle, frame.AsSpan(sent), []);
            }
        }
        finally
        {
            for (int i = 0; i < fds.Count; i++)
            {
                if (added[i])
                {
                    fds[i].Handle.DangerousRelease();
                }
            }
        }
    }

    /// <summary>Receives one message of named fds, blocking until it arrives or <paramref name="timeout"/> passes.</summary>
    /// <param name="socket">A connected Unix stream or seqpacket socket.</param>
    /// <param name="timeout">How long to wait; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <returns>The fds by name, owned by the caller until taken.</returns>
    /// <exception cref="TimeoutException">Nothing arrived in time.</exception>
    /// <exception cref="VfioException">The peer closed the socket, or the message was malformed or truncated.</exception>
    public static ReceivedFds Receive(Socket socket, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(socket);
        CheckSocket(socket);
        bool infinite = timeout == Timeout.InfiniteTimeSpan;
        long deadline = infinite ? long.MaxValue : Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        var receiver = new FrameReceiver(socket);
        try
        {
            while (!receiver.TryAdvance())
            {
                // -1 is poll's "for ever": only for an infinite timeout, never for a deadline just passed.
                long remaining = infinite ? -1 : deadline - Environment.TickCount64;
                if (!infinite && remaining <= 0)
                {
                    throw new TimeoutException($"No fds arrived on the socket within {timeout}.");
                }
                WaitReadable(socket.SafeHandle, (int)Math.Min(remaining, int.MaxValue));
            }
            return receiver.Complete();
        }
        finally
        {
            receiver.Dispose();
        }
    }

    /// <summary>Receives one message of named fds asynchronously.</summary>
    /// <param name="socket">A connected Unix stream or seqpacket socket.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The fds by name, owned by the caller until taken.</returns>
    /// <exception cref="VfioException">The peer closed the socket, or the message was malformed or truncated.</exception>
    public static async ValueTask<ReceivedFds> ReceiveAsync(Socket socket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socket);
        CheckSocket(socket);
        var receiver = new FrameReceiver(socket);
        try
        {
            while (!receiver.TryAdvance())
            {
                // A zero-byte receive completes when data is readable, without consuming it.
                await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
            return receiver.Complete();
        }
        finally
        {
            receiver.Dispose();
        }
    }

    /// <summary>
    /// Adopts an fd this process inherited from its launcher (e.g. <c>Vfio:IommuFd=3</c>), after checking it is open.
    /// </summary>
    /// <param name="fd">The fd number; 0 is valid.</param>
    /// <param name="ownsHandle">True to take ownership: the handle closes the fd and it is made close-on-exec.
    /// False to borrow it: the caller (or the launcher's protocol) keeps responsibility for closing it.</param>
    /// <returns>A handle for the fd.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fd"/> is negative.</exception>
    /// <exception cref="VfioException">No such fd is open in this process.</exception>
    public static SafeFileHandle AdoptInherited(int fd, bool ownsHandle)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        int flags = Libc.Result(Libc.fcntl(fd, Libc.F_GETFD, 0));
        if (flags < 0)
        {
            throw new VfioException((Errno)(-flags), "adopt inherited fd", $"fd {fd}",
                "The launcher must start this process with the fd open and not close-on-exec, and pass its number.");
        }
        if (ownsHandle && (flags & Libc.FD_CLOEXEC) == 0)
        {
            // Ours now: do not leak it into processes we start.
            VfioException.ThrowIfFailed(Libc.Result(Libc.fcntl(fd, Libc.F_SETFD, flags | Libc.FD_CLOEXEC)), "fcntl(F_SETFD)", $"fd {fd}");
        }
        return new SafeFileHandle(fd, ownsHandle);
    }

    private static void CheckSocket(Socket socket)
    {
        if (socket.AddressFamily != AddressFamily.Unix)
        {
            throw new ArgumentException("fds can only be passed over a Unix domain socket.", nameof(socket));
        }
        if (socket.SocketType is not (SocketType.Stream or SocketType.Seqpacket))
        {
            throw new ArgumentException("fd passing needs a stream or seqpacket Unix socket.", nameof(socket));
        }
    }

    private static byte[] EncodeFrame(IReadOnlyList<NamedFd> fds)
    {
        if (fds.Count is 0 or > Libc.SCM_MAX_FD)
        {
            throw new ArgumentException($"A message carries 1 to {Libc.SCM_MAX_FD} fds, not {fds.Count}.", nameof(fds));
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int bodyLength = 2;
        foreach (NamedFd fd in fds)
        {
            ArgumentNullException.ThrowIfNull(fd.Handle, nameof(fds));
            if (fd.Handle.IsInvalid || fd.Handle.IsClosed)
            {
                throw new ArgumentException($"The fd named '{fd.Name}' is closed or invalid.", nameof(fds));
            }
            int nameBytes = string.IsNullOrEmpty(fd.Name) ? 0 : Encoding.UTF8.GetByteCount(fd.Name);
            if (nameBytes is 0 or > MaxNameBytes)
            {
                throw new ArgumentException($"An fd name must be 1 to {MaxNameBytes} bytes of UTF-8: '{fd.Name}'.", nameof(fds));
            }
            if (!seen.Add(fd.Name))
            {
                throw new ArgumentException($"The fd name '{fd.Name}' appears twice.", nameof(fds));
            }
            bodyLength += 2 + nameBytes;
        }
        byte[] frame = new byte[HeaderSize + bodyLength];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(4), (uint)bodyLength);
        BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(HeaderSize), (ushort)fds.Count);
        int at = HeaderSize + 2;
        foreach (NamedFd fd in fds)
        {
            int n = Encoding.UTF8.GetBytes(fd.Name, frame.AsSpan(at + 2));
            BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(at), (ushort)n);
            at += 2 + n;
        }
        return frame;
    }

    private static int SendWithRights(SafeHandle socket, ReadOnlySpan<byte> data, ReadOnlySpan<int> fds)
    {
        while (true)
        {
            nint rc = Libc.SendWithRights(socket, data, fds, Libc.MSG_DONTWAIT);
            if (rc >= 0)
            {
                return (int)rc;
            }
            if (rc != -(int)Errno.EAGAIN)
            {
                VfioException.Throw((int)rc, "sendmsg(SCM_RIGHTS)", "fd-passing socket");
            }
            Poll(socket, Libc.POLLOUT, -1);
        }
    }

    private static void WaitReadable(SafeHandle socket, int timeoutMilliseconds) => Poll(socket, Libc.POLLIN, timeoutMilliseconds);

    private static void Poll(SafeHandle socket, short events, int timeoutMilliseconds)
    {
        int rc = Libc.PollOne(socket, events, timeoutMilliseconds);
        if (rc < 0 && rc != -(int)Errno.EINTR)
        {
            VfioException.Throw(rc, "poll", "fd-passing socket");
        }
    }

    /// <summary>
    /// Reads one frame without blocking, step by step: the header (with the fds) first, then exactly the body, so
    /// it never consumes bytes, or fds, of the next frame. Owns the fds until <see cref="Complete"/>.
    /// </summary>
    private sealed class FrameReceiver : IDisposable
    {
        private readonly Socket _socket;
        private readonly bool _seqpacket;
        private byte[] _buffer = new byte[HeaderSize];
        private int _have;
        private int _need = HeaderSize;
        private List<SafeFileHandle>? _fds;

        internal FrameReceiver(Socket socket)
        {
            _socket = socket;
            _seqpacket = socket.SocketType == SocketType.Seqpacket;
            if (_seqpacket)
            {
                // A record must be read whole, or its tail is lost.
                _buffer = new byte[HeaderSize + MaxBodySize];
                _need = _buffer.Length;
            }
        }

        /// <summary>Reads what is available; true when the whole frame is in.</summary>
        internal bool TryAdvance()
        {
            while (true)
            {
                if (!_seqpacket && _have == _need)
                {
                    if (_need == HeaderSize)
                    {
                        int body = ParseHeader(_buffer);
                        Array.Resize(ref _buffer, HeaderSize + body);
                        _need = HeaderSize + body;
                        continue;
                    }
                    return true;
                }
                int rc = ReceiveSome();
                if (rc == -(int)Errno.EAGAIN)
                {
                    return false;
                }
                if (rc == 0)
                {
                    throw new VfioException("recvmsg(SCM_RIGHTS)", "fd-passing socket",
                        _have == 0 ? "the peer closed the socket without sending fds" : "the peer closed the socket in the middle of a message");
                }
                _have += rc;
                if (_seqpacket)
                {
                    if (_have < HeaderSize || ParseHeader(_buffer) != _have - HeaderSize)
                    {
                        throw new VfioException("recvmsg(SCM_RIGHTS)", "fd-passing socket", "the record's length does not match its header");
                    }
                    return true;
                }
            }
        }

        private int ReceiveSome()
        {
            // Only the first read of a frame may carry fds: they ride on its first byte.
            bool acceptRights = _have == 0;
            Span<int> fds = stackalloc int[Libc.SCM_MAX_FD];
            nint rc = Libc.ReceiveWithRights(_socket.SafeHandle, _buffer.AsSpan(_have, _need - _have), acceptRights, fds,
                out int fdCount, out int flags, Libc.MSG_DONTWAIT);
            // Own every fd that arrived before anything can throw, so none leaks.
            if (fdCount > 0)
            {
                _fds ??= [];
                foreach (int fd in fds[..fdCount])
                {
                    _fds.Add(new SafeFileHandle(fd, ownsHandle: true));
                }
            }
            if (rc < 0 && rc != -(int)Errno.EAGAIN)
            {
                VfioException.Throw((int)rc, "recvmsg(SCM_RIGHTS)", "fd-passing socket");
            }
            if (rc > 0 && (flags & Libc.MSG_CTRUNC) != 0)
            {
                throw Truncated();
            }
            if (rc > 0 && (flags & Libc.MSG_TRUNC) != 0)
            {
                throw new VfioException("recvmsg(SCM_RIGHTS)", "fd-passing socket", "the record was longer than any valid message (MSG_TRUNC)");
            }
            return (int)rc;
        }

        private static VfioException Truncated() => new("recvmsg(SCM_RIGHTS)", "fd-passing socket",
            "the fds were truncated (MSG_CTRUNC)", "The process may be at its open-file limit (ulimit -n), or the sender put more than 253 fds in one message.");

        private static int ParseHeader(ReadOnlySpan<byte> header)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic)
            {
                throw new VfioException("recvmsg(SCM_RIGHTS)", "fd-passing socket", "the message does not start with the fd-passing magic 'VFD1'");
            }
            uint body = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
            if (body is < 2 or > MaxBodySize)
            {
                throw new VfioException("recvmsg(SCM_RIGHTS)", "fd-passing socket", $"the message's body length {body} is out of range");
            }
            return (int)body;
        }

        /// <summary>Decodes the names and pairs them with the fds; ownership moves to the result.</summary>
        internal ReceivedFds Complete()
        {
            ReadOnlySpan<byte> body = _buffer.AsSpan(HeaderSize, _have - HeaderSize);
            int count = BinaryPrimitives.ReadUInt16LittleEndian(body);
            int received = _fds?.Count ?? 0;
            if (count != received)
            {
                throw new VfioException("recvmsg(SCM_RIGHTS)", "fd-passing socket", $"the message names {count} fds but {received} arrived");
            }
            var result = new Dictionary<string, SafeFileHandle?>(count, StringComparer.Ordinal);
            int at = 2;
            for (int i = 0; i < count; i++)
            {
                if (at + 2 > body.Length)
                {
                    throw new VfioException("recvmsg(SCM_RIGHTS)", "fd-passing socket", "the message's names are truncated");
                }
                int length = BinaryPrimitives.ReadUInt16LittleEndian(body[at..]);
                if (length is 0 or > MaxNameBytes || at + 2 + length > body.Length)
                {
                    throw new VfioException("recvmsg(SCM_RIGHTS)", "fd-passing socket", "the message's names are malformed");
                }
                string name = Encoding.UTF8.GetString(body.Slice(at + 2, length));
                if (!result.TryAdd(name, _fds![i]))
                {
                    throw new VfioException("recvmsg(SCM_RIGHTS)", "fd-passing socket", $"the name '{name}' appears twice");
                }
                at += 2 + length;
            }
            _fds = null; // ownership moved
            return new ReceivedFds(result);
        }

        public void Dispose()
        {
            if (_fds is not null)
            {
                foreach (SafeFileHandle fd in _fds)
                {
                    fd.Dispose();
                }
                _fds = null;
            }
        }
    }
}
