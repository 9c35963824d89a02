// Rate arithmetic shared by the interpolation filters and vfi.Rate, which answers it to Python.
//
// The output rate is the source rate times a reduced fraction num/den > 1.
// Output frame n sits at source position n*den/num: a = n*den / num, r = n*den % num, t = r/num.
// Everything is exact integer arithmetic; num and den are kept <= INT_MAX so that n*den fits in int64.
#ifndef VFI_RATE_H
#define VFI_RATE_H

#include <climits>
#include <cstdint>

namespace vfi {

typedef __int128 i128;

inline i128 gcd128(i128 a, i128 b) {
    if (a < 0)
        a = -a;
    if (b < 0)
        b = -b;
    while (b != 0) {
        i128 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

// Reduces num/den (den > 0) and stores it in *onum/*oden when both fit in [1, limit]; returns false otherwise.
inline bool reduceInto(i128 num, i128 den, int64_t limit, int64_t *onum, int64_t *oden) {
    if (num <= 0 || den <= 0)
        return false;
    i128 g = gcd128(num, den);
    num /= g;
    den /= g;
    if (num > limit || den > limit)
        return false;
    *onum = static_cast<int64_t>(num);
    *oden = static_cast<int64_t>(den);
    return true;
}

struct Rate {
    int64_t num = 2; // output frames per `den` source frames, reduced, num > den >= 1, both <= INT_MAX
    int64_t den = 1;
};

// Where output frame n comes from.
struct Position {
    int a;          // source frame at or before the output position
    double t;       // (n*den % num) / num, the timestep between a and a+1
    bool inference; // false: output is source frame a itself (exact hit or at/after the last source frame)
};

inline Position mapFrame(int n, const Rate &rate, int srcFrames) {
    Position p;
    int64_t pos = static_cast<int64_t>(n) * rate.den;
    int64_t a = pos / rate.num;
    int64_t r = pos % rate.num; // 0: the output position is exactly source frame a
    p.t = static_cast<double>(r) / static_cast<double>(rate.num);
    int last = srcFrames - 1;
    if (a >= last) {
        p.a = last;
        p.inference = false;
    } else {
        p.a = static_cast<int>(a);
        p.inference = r != 0;
    }
    return p;
}

// Number of output frames: floor(srcFrames * num / den), at least 1. Returns -1 when it does not fit in an int.
inline int64_t outputLength(int srcFrames, const Rate &rate) {
    i128 len = static_cast<i128>(srcFrames) * rate.num / rate.den;
    if (len < 1)
        len = 1;
    if (len > INT_MAX)
        return -1;
    return static_cast<int64_t>(len);
}

} // namespace vfi

#endif
