// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Text;

namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>
/// A minimal reader of a relocatable ELF64 little-endian object (<c>gcc -c</c>): the header, the section headers,
/// <c>.symtab</c> with its string table, and the bytes of a defined data symbol. x86-64, arm64 and ppc64le are
/// all ELF64 little-endian, so one reader serves the three.
/// </summary>
internal sealed class ElfObject
{
    private const int SectionHeaderSize = 64;
    private const int SymbolSize = 24;
    private const uint ShtSymtab = 2;
    private const uint ShtRela = 4;
    private const uint ShtNobits = 8;
    private const uint ShtRel = 9;

    private readonly byte[] _image;
    private readonly Section[] _sections;
    private readonly Dictionary<string, Symbol> _symbols = new(StringComparer.Ordinal);

    public ElfObject(byte[] image, string path)
    {
        _image = image;
        Path = path;
        if (image.Length < 64 || image[0] != 0x7F || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F')
        {
            throw new InvalidDataException($"{path} is not an ELF file.");
        }

        if (image[4] != 2 || image[5] != 1)
        {
            throw new InvalidDataException($"{path} is not ELF64 little-endian (EI_CLASS {image[4]}, EI_DATA {image[5]}).");
        }

        Type = U16(16);
        Machine = U16(18);
        Flags = U32(48);
        var sectionOffset = U64(40);
        var sectionSize = U16(58);
        var sectionCount = U16(60);
        if (sectionSize != SectionHeaderSize)
        {
            throw new InvalidDataException($"{path}: e_shentsize is {sectionSize}, expected {SectionHeaderSize}.");
        }

        _sections = new Section[sectionCount];
        for (var i = 0; i < sectionCount; i++)
        {
            var at = checked((int)sectionOffset + (i * SectionHeaderSize));
            _sections[i] = new Section(U32(at + 4), U64(at + 24), U64(at + 32), U32(at + 40), U32(at + 44));
        }

        foreach (var symtab in _sections.Where(s => s.Type == ShtSymtab))
        {
            var strings = _sections[symtab.Link];
            for (var at = symtab.Offset; at + SymbolSize <= symtab.Offset + symtab.Size; at += SymbolSize)
            {
                var name = CString(strings.Offset + U32(checked((int)at)));
                var index = U16(checked((int)at + 6));
                if (name.Length > 0 && index != 0 && index < sectionCount)
                {
                    _symbols[name] = new Symbol(index, U64(checked((int)at + 8)), U64(checked((int)at + 16)));
                }
            }
        }
    }

    /// <summary>The file the object was read from, for messages.</summary>
    public string Path { get; }

    /// <summary><c>e_type</c> (1 for a relocatable object).</summary>
    public ushort Type { get; }

    /// <summary><c>e_machine</c>.</summary>
    public ushort Machine { get; }

    /// <summary><c>e_flags</c> (on ppc64, the ELF ABI version in the low two bits).</summary>
    public uint Flags { get; }

    /// <summary>The initialised bytes of the defined symbol <paramref name="name"/>, or <see langword="null"/> when there is none.</summary>
    /// <exception cref="InvalidDataException">The symbol's section has relocations, so its bytes are not final values.</exception>
    public byte[]? Data(string name)
    {
        if (!_symbols.TryGetValue(name, out var symbol))
        {
            return null;
        }

        var section = _sections[symbol.Section];
        if (_sections.Any(s => (s.Type == ShtRela || s.Type == ShtRel) && s.Info == symbol.Section))
        {
            throw new InvalidDataException($"{Path}: the section of {name} has relocations, so its bytes are not the values.");
        }

        if (symbol.Value + symbol.Size > section.Size)
        {
            throw new InvalidDataException($"{Path}: {name} lies outside its section.");
        }

        return section.Type == ShtNobits
            ? new byte[symbol.Size]
            : _image.AsSpan(checked((int)(section.Offset + symbol.Value)), checked((int)symbol.Size)).ToArray();
    }

    /// <summary>The defined symbol <paramref name="name"/> as an array of 64-bit little-endian values.</summary>
    public ulong[]? Values(string name) =>
        Data(name) is { } bytes
            ? Enumerable.Range(0, bytes.Length / 8).Select(i => BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(i * 8))).ToArray()
            : null;

    private ushort U16(int at) => BinaryPrimitives.ReadUInt16LittleEndian(_image.AsSpan(at));

    private uint U32(int at) => BinaryPrimitives.ReadUInt32LittleEndian(_image.AsSpan(at));

    private ulong U64(int at) => BinaryPrimitives.ReadUInt64LittleEndian(_image.AsSpan(at));

    private string CString(ulong at)
    {
        var start = checked((int)at);
        var end = Array.IndexOf(_image, (byte)0, start);
        return Encoding.ASCII.GetString(_image, start, (end < 0 ? _image.Length : end) - start);
    }

    private readonly record struct Section(uint Type, ulong Offset, ulong Size, uint Link, uint Info);

    private readonly record struct Symbol(ushort Section, ulong Value, ulong Size);
}
