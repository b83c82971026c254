// SPDX-License-Identifier: MIT
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>How a C# field is represented, for comparison with gcc's <c>__builtin_classify_type</c>/<c>_Generic</c>.</summary>
internal enum FieldKind
{
    /// <summary>An unsigned integer (C <c>'u'</c>).</summary>
    Unsigned,

    /// <summary>A signed integer (C <c>'s'</c>).</summary>
    Signed,

    /// <summary>A nested kernel struct (C <c>'r'</c>).</summary>
    Struct,
}

/// <summary>One instance field of a kernel struct as the runtime lays it out.</summary>
internal sealed record StructField(
    string Name,
    int Offset,
    int Size,
    int Align,
    int ElementSize,
    FieldKind Kind,
    bool IsFixedBuffer,
    Type FieldType)
{
    /// <summary>Whether the C side may also be a pointer (pointer members are carried as 64-bit unsigned integers).</summary>
    public bool MayBePointer => Kind == FieldKind.Unsigned && Size == 8 && !IsFixedBuffer;
}

/// <summary>A flexible array member documented on the struct by a <c>public const int &lt;member&gt;_offset</c>.</summary>
internal sealed record FlexibleArray(string Member, int Offset);

/// <summary>A struct of <c>Vfio.Core.Interop</c> (public or internal), measured.</summary>
internal sealed record KernelStruct(
    Type Type,
    string Name,
    int Size,
    int Align,
    IReadOnlyList<StructField> Fields,
    IReadOnlyList<FlexibleArray> FlexibleArrays,
    IReadOnlyList<string> Problems);

/// <summary>A <c>const</c> of a uAPI class.</summary>
internal sealed record KernelConstant(string Name, Type DeclaringType, object Value)
{
    public Type ValueType => Value.GetType();

    public bool IsString => Value is string;
}

/// <summary>A <c>static readonly uint</c> ioctl request number of a uAPI class (the number for the architecture this process runs on).</summary>
internal sealed record KernelIoctl(string Name, Type DeclaringType, uint Value)
{
    /// <summary>The command number (<c>_IOC_NR</c>).</summary>
    public uint Nr => Value & 0xFF;

    /// <summary>The ioctl type (<c>_IOC_TYPE</c>).</summary>
    public uint IoctlType => (Value >> 8) & 0xFF;
}

/// <summary>
/// The C# side of the ABI, read by reflection from the Vfio.Core assembly so that nothing is listed twice and the
/// tests do not depend on the declarations' visibility (public or internal): every top-level struct of namespace
/// <c>Vfio.Core.Interop</c>, every <c>static readonly uint</c> of <c>VfioUapi</c> and <c>IommuUapi</c> (ioctl
/// numbers), and every <c>const</c> of those classes and of <c>IoctlEncoding</c>.
/// </summary>
internal static class UapiModel
{
    public const string InteropNamespace = "Vfio.Core.Interop";

    /// <summary>Suffix of the struct-level constants that give the offset of a flexible array member.</summary>
    public const string FlexibleArrayOffsetSuffix = "_offset";

    private const BindingFlags StaticFields = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly;

    /// <summary>The assembly that declares the uAPI.</summary>
    public static readonly Assembly Core = Assembly.Load(new AssemblyName("Vfio.Core"));

    /// <summary><c>IoctlEncoding</c>, which computes an ioctl number per architecture.</summary>
    public static readonly Type IoctlEncoding = InteropType("IoctlEncoding");

    /// <summary>The classes holding ioctl numbers.</summary>
    public static readonly Type[] IoctlClasses = [InteropType("VfioUapi"), InteropType("IommuUapi")];

    /// <summary>The classes whose constants are kernel macros or enumerators.</summary>
    public static readonly Type[] ConstantClasses = [.. IoctlClasses, IoctlEncoding];

    /// <summary>
    /// Constants of the classes above that are deliberately not compared with the headers because they are not a C
    /// macro or enumerator of that name (helpers added for C# callers). Each entry names its reason. Empty today:
    /// every constant of those classes is a kernel name. A stale entry (no such constant) fails
    /// <c>ConstantsNotInHeaders_AreDeclared</c>.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> ConstantsNotInHeaders = new Dictionary<string, string>(StringComparer.Ordinal)
    {
    };

    private static readonly Func<uint, Architecture, uint> s_io =
        IoctlEncoding.GetMethod("Io", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static, [typeof(uint), typeof(Architecture)])
            ?.CreateDelegate<Func<uint, Architecture, uint>>()
        ?? throw new InvalidOperationException($"{IoctlEncoding} has no static uint Io(uint nr, Architecture architecture).");

    private static readonly Lazy<IReadOnlyList<KernelStruct>> s_structs = new(LoadStructs);
    private static readonly Lazy<IReadOnlyList<KernelConstant>> s_constants = new(LoadConstants);
    private static readonly Lazy<IReadOnlyList<KernelIoctl>> s_ioctls = new(LoadIoctls);

    public static IReadOnlyList<KernelStruct> Structs => s_structs.Value;

    public static IReadOnlyList<KernelConstant> Constants => s_constants.Value;

    public static IReadOnlyList<KernelIoctl> Ioctls => s_ioctls.Value;

    public static KernelStruct Struct(string name) => Structs.Single(s => s.Name == name);

    public static KernelConstant Constant(string name) => Constants.Single(c => c.Name == name);

    public static KernelIoctl Ioctl(string name) => Ioctls.Single(i => i.Name == name);

    /// <summary><c>IoctlEncoding.Io(nr, architecture)</c>: the managed number of an ioctl for an architecture.</summary>
    public static uint Io(uint nr, Architecture architecture) => s_io(nr, architecture);

    public static TheoryData<string> StructNames() => [.. Structs.Select(s => s.Name)];

    public static TheoryData<string> IoctlNames() => [.. Ioctls.Select(i => i.Name)];

    public static TheoryData<string, string> StructRows() => AbiArch.Rows(Structs.Select(s => s.Name));

    public static TheoryData<string, string> ConstantRows() => AbiArch.Rows(Constants.Select(c => c.Name));

    public static TheoryData<string, string> IoctlRows() => AbiArch.Rows(Ioctls.Select(i => i.Name));

    /// <summary>Every static field of the uAPI classes that is neither a constant nor a <c>static readonly uint</c> ioctl number.</summary>
    public static IEnumerable<string> UnexpectedStaticFields() =>
        ConstantClasses.Distinct()
            .SelectMany(c => c.GetFields(StaticFields))
            .Where(f => !f.IsDefined(typeof(CompilerGeneratedAttribute)))
            .Where(f => !f.IsLiteral && !(f.IsInitOnly && f.FieldType == typeof(uint) && IoctlClasses.Contains(f.DeclaringType)))
            .Select(f => $"{f.DeclaringType!.Name}.{f.Name} ({f.FieldType.Name})");

    private static Type InteropType(string name) =>
        Core.GetType($"{InteropNamespace}.{name}") ?? throw new InvalidOperationException($"{Core.GetName().Name} declares no {InteropNamespace}.{name}.");

    private static IReadOnlyList<KernelStruct> LoadStructs() =>
        Core.GetTypes()
            .Where(t => t.IsValueType && !t.IsEnum && !t.IsNested && t.Namespace == InteropNamespace && !t.IsDefined(typeof(CompilerGeneratedAttribute)))
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .Select(Measure)
            .ToArray();

    private static KernelStruct Measure(Type type)
    {
        var problems = new List<string>();
        var fields = new List<StructField>();
        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            var offset = ManagedLayout.OffsetOf(field);
            var size = ManagedLayout.SizeOf(field.FieldType);
            var fixedBuffer = field.GetCustomAttribute<FixedBufferAttribute>();
            if (fixedBuffer is not null)
            {
                var elementSize = ManagedLayout.SizeOf(fixedBuffer.ElementType);
                if (elementSize * fixedBuffer.Length != size)
                {
                    problems.Add($"fixed buffer {field.Name}: {fixedBuffer.Length} × {elementSize} bytes but the buffer type is {size} bytes");
                }

                fields.Add(new StructField(field.Name, offset, size, ManagedLayout.AlignOf(field.FieldType), elementSize, KindOf(fixedBuffer.ElementType, problems, field.Name), true, fixedBuffer.ElementType));
            }
            else
            {
                fields.Add(new StructField(field.Name, offset, size, ManagedLayout.AlignOf(field.FieldType), size, KindOf(field.FieldType, problems, field.Name), false, field.FieldType));
            }

            if (!field.IsPublic && !field.IsAssembly)
            {
                problems.Add($"field {field.Name} is neither public nor internal");
            }
        }

        var flexibleArrays = new List<FlexibleArray>();
        foreach (var field in type.GetFields(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic))
        {
            if (field.IsLiteral && field.FieldType == typeof(int) && field.Name.EndsWith(FlexibleArrayOffsetSuffix, StringComparison.Ordinal))
            {
                flexibleArrays.Add(new FlexibleArray(field.Name[..^FlexibleArrayOffsetSuffix.Length], (int)field.GetRawConstantValue()!));
            }
            else
            {
                problems.Add($"static member {field.Name} is not a flexible-array offset constant (public const int <member>{FlexibleArrayOffsetSuffix})");
            }
        }

        return new KernelStruct(
            type,
            type.Name,
            ManagedLayout.SizeOf(type),
            ManagedLayout.AlignOf(type),
            fields.OrderBy(f => f.Offset).ThenBy(f => f.Name, StringComparer.Ordinal).ToArray(),
            flexibleArrays.OrderBy(f => f.Offset).ToArray(),
            problems);
    }

    private static FieldKind KindOf(Type type, List<string> problems, string name)
    {
        if (type == typeof(byte) || type == typeof(ushort) || type == typeof(uint) || type == typeof(ulong))
        {
            return FieldKind.Unsigned;
        }

        if (type == typeof(sbyte) || type == typeof(short) || type == typeof(int) || type == typeof(long))
        {
            return FieldKind.Signed;
        }

        if (type.IsValueType && !type.IsPrimitive && !type.IsEnum && type.Namespace == InteropNamespace && !type.IsNested)
        {
            return FieldKind.Struct;
        }

        problems.Add($"field {name} has type {type}, which is not a fixed-width integer or a kernel struct of {InteropNamespace}");
        return FieldKind.Unsigned;
    }

    private static IReadOnlyList<KernelConstant> LoadConstants() =>
        ConstantClasses
            .SelectMany(c => c.GetFields(StaticFields))
            .Where(f => f.IsLiteral && !ConstantsNotInHeaders.ContainsKey(f.Name))
            .Select(f => new KernelConstant(f.Name, f.DeclaringType!, f.GetRawConstantValue()!))
            .OrderBy(c => c.Name, StringComparer.Ordinal)
            .ToArray();

    private static IReadOnlyList<KernelIoctl> LoadIoctls() =>
        IoctlClasses
            .SelectMany(c => c.GetFields(StaticFields))
            .Where(f => f.IsInitOnly && f.FieldType == typeof(uint))
            .Select(f => new KernelIoctl(f.Name, f.DeclaringType!, (uint)f.GetValue(null)!))
            .OrderBy(i => i.Name, StringComparer.Ordinal)
            .ToArray();
}
