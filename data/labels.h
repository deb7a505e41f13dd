// The seven emotion classes in the canonical order used everywhere in dsn (model outputs,
// CSV columns, confusion matrices): the order of FER2013 and of the EmotiW 2018 confusion
// matrices. Dataset loaders map their own label numbering to this order.
#pragma once

#include <array>
#include <string_view>

namespace dsn::data {

inline constexpr int kNumEmotions = 7;

inline constexpr std::array<std::string_view, kNumEmotions> kEmotionNames = {
    "Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"};

}  // namespace dsn::data
