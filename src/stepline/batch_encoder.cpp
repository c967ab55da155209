// stepline.batch_encoder: a writer's batch of metrics records, from their queue form to their JSON lines and
// index columns, with the interpreter lock released for the formatting.
//
//     encode(items, first_seq) -> (lines, steps, times, epochs, keys, floats_first, values) | None
//
// items: the queue's tuples (tag, time, step, epoch, values), numbered from first_seq. The answer is None for a
// batch this encoder does not take (any value that is not a float, a bool or a 64-bit int, a key that is not
// text UTF-8 can hold, a time that is not a finite float): the caller then encodes it in Python, as before.
//
// Why: under the interpreter lock, a writer thread that builds a dict per record, encodes it and indexes it
// costs the training loop as much again as the loop's own work (the two threads share the lock). Here the lock is
// held only to read the numbers out of the tuples; the lines are written while the training loop runs.
//
// The lines are those of stepline.events.encode (docs/format.md): keys in the record's order, NaN and the
// infinities by name, floats as the shortest text that reads back the same double, in orjson's layout.
// steps, times, epochs: n int64 / float64 / float64 (a record without an epoch: columns.NO_EPOCH's bits).
// keys: the first record's keys when every record has the same keys in the same order, else None; then
// floats_first says which of them the first record holds as a float, and values holds every record's value of
// each key as a float64, a key's n values after another's.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

enum Kind : unsigned char { FLOAT, INT, BOOL, NONE };

struct Number {
    Kind kind;
    double real;
    long long integer;
};

struct Value {
    const char* key;
    Py_ssize_t key_size;
    Number number;
};

struct Record {
    double time;
    long long step;
    Number epoch;
    Py_ssize_t first_value;  // its values are values[first_value : next record's first_value]
};

constexpr uint64_t NO_EPOCH_BITS = 0x7FF800000E90C000ULL;

// Reads a metric value or an epoch; false for what this encoder leaves to Python.
bool read_number(PyObject* object, Number& number) {
    if (PyFloat_CheckExact(object)) {
        number.kind = FLOAT;
        number.real = PyFloat_AS_DOUBLE(object);
        return true;
    }
    if (PyBool_Check(object)) {
        number.kind = BOOL;
        number.integer = object == Py_True;
        return true;
    }
    if (PyLong_CheckExact(object)) {
        int overflow = 0;
        number.integer = PyLong_AsLongLongAndOverflow(object, &overflow);
        if (overflow || (number.integer == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return false;  // past int64 (up to uint64 is valid): Python's path writes it
        }
        number.kind = INT;
        return true;
    }
    return false;
}

// Every put_* writes at the cursor and returns it moved past what it wrote; the caller made room
// (at most MAX_NUMBER bytes for a number, 6 a byte of a key and 3 more).
constexpr Py_ssize_t MAX_NUMBER = 32;

char* put(char* out, const char* text, size_t size) {
    std::memcpy(out, text, size);
    return out + size;
}

template <size_t N>
char* put(char* out, const char (&text)[N]) {
    return put(out, text, N - 1);
}

// The shortest decimal that reads back as the same double, laid out as orjson lays it out: plain up to 16 digits
// before the point or 5 zeros after it, otherwise with an exponent ("1e+16", "1.5e-7").
char* put_double(char* out, double value) {
    if (value == 0) return std::signbit(value) ? put(out, "-0.0") : put(out, "0.0");
    char text[40];
    const char* end = std::to_chars(text, text + sizeof text, value, std::chars_format::scientific).ptr;
    const char* p = text;
    if (*p == '-') {
        *out++ = '-';
        ++p;
    }
    char digits[20];
    int length = 0;
    for (; *p != 'e'; ++p) {
        if (*p != '.') digits[length++] = *p;
    }
    int exponent = 0;
    std::from_chars(p[1] == '+' ? p + 2 : p + 1, end, exponent);
    const int point = exponent + 1;  // digits before the decimal point
    if (length <= point && point <= 16) {
        out = put(out, digits, length);
        std::memset(out, '0', point - length);
        return put(out + point - length, ".0");
    }
    if (0 < point && point <= 16) {
        out = put(out, digits, point);
        *out++ = '.';
        return put(out, digits + point, length - point);
    }
    if (-5 < point && point <= 0) {
        out = put(out, "0.");
        std::memset(out, '0', -point);
        return put(out - point, digits, length);
    }
    *out++ = digits[0];
    if (length > 1) {
        *out++ = '.';
        out = put(out, digits + 1, length - 1);
    }
    out = exponent > 0 ? put(out, "e+") : put(out, "e");
    return std::to_chars(out, out + 8, exponent).ptr;
}

char* put_integer(char* out, long long value) {
    return std::to_chars(out, out + 24, value).ptr;
}

char* put_number(char* out, const Number& number) {
    switch (number.kind) {
        case FLOAT:
            if (std::isnan(number.real)) return put(out, "\"NaN\"");
            if (std::isinf(number.real)) return number.real > 0 ? put(out, "\"Infinity\"") : put(out, "\"-Infinity\"");
            return put_double(out, number.real);
        case INT: return put_integer(out, number.integer);
        case BOOL: return number.integer ? put(out, "true") : put(out, "false");
        case NONE: break;
    }
    return put(out, "null");
}

char* put_key(char* out, const char* key, Py_ssize_t size) {
    static const char hex[] = "0123456789abcdef";
    *out++ = '"';
    for (Py_ssize_t i = 0; i < size; ++i) {
        const unsigned char c = static_cast<unsigned char>(key[i]);
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = static_cast<char>(c);
            continue;
        }
        *out++ = '\\';
        switch (c) {
            case '"': *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '\n': *out++ = 'n'; break;
            case '\r': *out++ = 'r'; break;
            case '\t': *out++ = 't'; break;
            case '\b': *out++ = 'b'; break;
            case '\f': *out++ = 'f'; break;
            default: {
                const char escape[] = {'u', '0', '0', hex[c >> 4], hex[c & 15]};
                out = put(out, escape, sizeof escape);
            }
        }
    }
    return put(out, "\":");
}

double as_double(const Number& number) {
    return number.kind == FLOAT ? number.real : static_cast<double>(number.integer);
}

// What one batch is read into; kept from one batch to the next (a writer thread's own: each run has its own
// writer), since fresh memory of this size costs more in page faults than the encoding itself.
struct Batch {
    std::vector<Record> records;
    std::vector<Value> values;
    std::vector<long long> steps;
    std::vector<double> times, epochs, columns;
    Py_ssize_t bound = 0;  // the most bytes the lines can take
};

// Reads the batch under the interpreter lock; false for a batch left to Python.
bool read_batch(PyObject* items, Batch& batch) {
    constexpr Py_ssize_t RECORD_BOUND = 64 + 3 * MAX_NUMBER + 24;  // the fixed text, seq, time, step, epoch
    const Py_ssize_t n = PyList_GET_SIZE(items);
    batch.records.resize(n);
    batch.values.clear();
    batch.bound = n * RECORD_BOUND;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* item = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 5) return false;
        PyObject* time = PyTuple_GET_ITEM(item, 1);
        PyObject* step = PyTuple_GET_ITEM(item, 2);
        PyObject* epoch = PyTuple_GET_ITEM(item, 3);
        PyObject* dict = PyTuple_GET_ITEM(item, 4);
        Record& record = batch.records[i];
        if (!PyFloat_CheckExact(time) || !std::isfinite(record.time = PyFloat_AS_DOUBLE(time))) return false;
        if (!PyLong_CheckExact(step)) return false;
        int overflow = 0;
        record.step = PyLong_AsLongLongAndOverflow(step, &overflow);
        if (overflow || (record.step == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return false;
        }
        if (epoch == Py_None) {
            record.epoch.kind = NONE;
        } else if (!read_number(epoch, record.epoch)) {
            return false;
        }
        if (!PyDict_CheckExact(dict)) return false;
        record.first_value = static_cast<Py_ssize_t>(batch.values.size());
        Py_ssize_t position = 0;
        PyObject *key, *value;
        while (PyDict_Next(dict, &position, &key, &value)) {
            Value entry;
            if (!PyUnicode_CheckExact(key) || !read_number(value, entry.number)) return false;
            entry.key = PyUnicode_AsUTF8AndSize(key, &entry.key_size);
            if (entry.key == nullptr) {  // a lone surrogate: Python's path escapes it and says so
                PyErr_Clear();
                return false;
            }
            batch.bound += 6 * entry.key_size + 4 + MAX_NUMBER;
            batch.values.push_back(entry);
        }
    }
    return true;
}

// Whether every record has the first record's keys, in its order.
bool alike(const Batch& batch, Py_ssize_t width) {
    const auto& records = batch.records;
    const auto& values = batch.values;
    const Py_ssize_t n = static_cast<Py_ssize_t>(records.size());
    if (width == 0 || static_cast<Py_ssize_t>(values.size()) != n * width) return false;
    for (Py_ssize_t i = 1; i < n; ++i) {
        if (records[i].first_value != i * width) return false;
        const Value* row = &values[i * width];
        for (Py_ssize_t j = 0; j < width; ++j) {
            const Value& first = values[j];
            if (row[j].key != first.key &&
                (row[j].key_size != first.key_size || std::memcmp(row[j].key, first.key, first.key_size) != 0))
                return false;
        }
    }
    return true;
}

char* write_lines(char* out, const Batch& batch, long long first_seq) {
    const auto& records = batch.records;
    const auto& values = batch.values;
    const Py_ssize_t n = static_cast<Py_ssize_t>(records.size());
    for (Py_ssize_t i = 0; i < n; ++i) {
        const Record& record = records[i];
        const Py_ssize_t end = i + 1 < n ? records[i + 1].first_value : static_cast<Py_ssize_t>(values.size());
        out = put(out, "{\"type\":\"metrics\",\"seq\":");
        out = put_integer(out, first_seq + i);
        out = put(out, ",\"time\":");
        out = put_double(out, record.time);
        out = put(out, ",\"step\":");
        out = put_integer(out, record.step);
        if (record.epoch.kind != NONE) {
            out = put(out, ",\"epoch\":");
            out = put_number(out, record.epoch);
        }
        out = put(out, ",\"values\":{");
        for (Py_ssize_t v = record.first_value; v < end; ++v) {
            if (v != record.first_value) *out++ = ',';
            out = put_key(out, values[v].key, values[v].key_size);
            out = put_number(out, values[v].number);
        }
        out = put(out, "}}\n");
    }
    return out;
}

// The columns of the index: each record's step, time and epoch; with the same keys in every record, the values.
bool fill_columns(Batch& batch, Py_ssize_t width) {
    const Py_ssize_t n = static_cast<Py_ssize_t>(batch.records.size());
    batch.steps.resize(n);
    batch.times.resize(n);
    batch.epochs.resize(n);
    for (Py_ssize_t i = 0; i < n; ++i) {
        const Record& record = batch.records[i];
        batch.steps[i] = record.step;
        batch.times[i] = record.time;
        if (record.epoch.kind == NONE) {
            std::memcpy(&batch.epochs[i], &NO_EPOCH_BITS, sizeof(double));
        } else {
            batch.epochs[i] = as_double(record.epoch);
        }
    }
    if (!alike(batch, width)) return false;
    batch.columns.resize(batch.values.size());
    for (Py_ssize_t i = 0; i < n; ++i)
        for (Py_ssize_t j = 0; j < width; ++j) batch.columns[j * n + i] = as_double(batch.values[i * width + j].number);
    return true;
}

template <typename T>
PyObject* bytes_of(const std::vector<T>& array) {
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(array.data()),
                                     static_cast<Py_ssize_t>(array.size() * sizeof(T)));
}

// The first record's keys, and which of its values are floats.
bool first_keys(PyObject* items, Py_ssize_t width, PyObject** keys, PyObject** floats_first) {
    *keys = PyTuple_New(width);
    *floats_first = PyTuple_New(width);
    if (*keys == nullptr || *floats_first == nullptr) return false;
    PyObject* first = PyTuple_GET_ITEM(PyList_GET_ITEM(items, 0), 4);
    Py_ssize_t position = 0;
    PyObject *key, *value;
    for (Py_ssize_t j = 0; j < width && PyDict_Next(first, &position, &key, &value); ++j) {
        PyTuple_SET_ITEM(*keys, j, Py_NewRef(key));
        PyTuple_SET_ITEM(*floats_first, j, Py_NewRef(PyFloat_CheckExact(value) ? Py_True : Py_False));
    }
    return true;
}

PyObject* encode(PyObject*, PyObject* args) {
    PyObject* items;
    long long first_seq;
    if (!PyArg_ParseTuple(args, "O!L:encode", &PyList_Type, &items, &first_seq)) return nullptr;
    thread_local Batch kept;
    Batch& batch = kept;
    if (!read_batch(items, batch)) Py_RETURN_NONE;
    const Py_ssize_t n = static_cast<Py_ssize_t>(batch.records.size());
    const Py_ssize_t width =
        n > 1 ? batch.records[1].first_value : static_cast<Py_ssize_t>(batch.values.size());
    PyObject* lines = PyBytes_FromStringAndSize(nullptr, batch.bound);
    if (lines == nullptr) return nullptr;
    char* start = PyBytes_AS_STRING(lines);
    char* end;
    bool same_keys;
    Py_BEGIN_ALLOW_THREADS  // the tuples stay alive and unchanged: the caller holds the list, nothing else does
    end = write_lines(start, batch, first_seq);
    same_keys = fill_columns(batch, width);
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&lines, end - start) < 0) return nullptr;
    PyObject *keys = nullptr, *floats_first = nullptr;
    if (same_keys && !first_keys(items, width, &keys, &floats_first)) {
        Py_DECREF(lines);
        Py_XDECREF(keys);
        Py_XDECREF(floats_first);
        return nullptr;
    }
    return Py_BuildValue("(NNNNNNN)", lines, bytes_of(batch.steps), bytes_of(batch.times), bytes_of(batch.epochs),
                         same_keys ? keys : Py_NewRef(Py_None), same_keys ? floats_first : Py_NewRef(Py_None),
                         same_keys ? bytes_of(batch.columns) : Py_NewRef(Py_None));
}

PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS,
     "encode(items, first_seq) -> (lines, steps, times, epochs, keys, floats_first, values) | None"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "stepline.batch_encoder",
                      "A writer's batch of metrics records encoded with the interpreter lock released.", -1,
                      methods};

}  // namespace

PyMODINIT_FUNC PyInit_batch_encoder() { return PyModule_Create(&module); }
